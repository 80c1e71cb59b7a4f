// The setup the reload load suites share (concurrency_test, stress_test): a watched ReloadRig serving
// probe A with a router sized for many tasks at once, the replacements that alternate probe.so between
// the probe's builds A and B by each way a file arrives, and the record of the version each generation
// served.
#pragma once

#include "reload_rig.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace taskhost::testing {

// Under ASan or TSan the load suites do less, or give each step more time.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// How a replacement build arrives as the watched probe.so.
enum class Arrival {
  rename_over,  // copied beside it, then renamed over it (install_plugin_file)
  copy_over,    // written over it in place, same inode, while older copies still run; probe.so must be a
                // regular file then, not a symlink into the build copies
  symlink,      // probe.so re-pointed at a copy of the build outside the watched directory
};

class AlternatingProbe {
  TempDir targets_;  // the symlink targets a.so and b.so; declared first, so it outlives the rig

 public:
  // Serves probe A from the start; the router admits `max_active` tasks and ends a cancelled task that
  // did not end itself after `cancel_deadline`.
  AlternatingProbe(size_t max_active, std::chrono::milliseconds cancel_deadline);

  // Replacement `round` (from 1): odd rounds install build B, even ones A, arriving `how`. Waits until
  // the new version serves (REQUIREs that it does), records it and returns its generation.
  uint64_t replace(int round, Arrival how);
  // The version generation `gen` served as recorded, "" if none; safe from any thread.
  std::string version_of(uint64_t gen) const;
  // How many generations served, the first one included.
  size_t generations() const;

  ReloadRig rig;

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, std::string> versions_;  // generation id -> version
};

}  // namespace taskhost::testing
