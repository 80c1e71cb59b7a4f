// Wall-clock time as the wire carries it: milliseconds since the Unix epoch (event and record stamps,
// created/updated columns). Not for measuring intervals: that is steady_clock's job.
#pragma once

#include <chrono>
#include <cstdint>

namespace taskhost {

inline int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace taskhost
