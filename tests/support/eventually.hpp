// Polling a condition that no callback announces: true once `pred` holds, false if `timeout` passed
// first. For state a test can only look at (a pool's thread count, a process table, a stream). The one
// polling helper of the suites: those whose predicates are costly pass a longer `poll` (the NATS rig's
// kServerPoll).
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace taskhost::testing {

inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10),
                       std::chrono::milliseconds poll = std::chrono::milliseconds(5)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace taskhost::testing
