// Helpers shared by the first-party plugin suites: polling waits, reading recorded events and JSON
// values, and checking that a process is gone.
#pragma once

#include "eventually.hpp"

#include <signal.h>
#include <sys/types.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

namespace plugin_tests {

using namespace std::chrono_literals;

// For conditions a recorder cannot wait for itself (its predicate would have to call back into it).
using taskhost::testing::eventually;

// True when no process (not even a zombie) has this pid: the plugin killed AND reaped it.
inline bool process_gone(pid_t pid) { return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH; }

// True when the process is gone or a zombie: for a grandchild, which its parent's death hands to init,
// whose reaping is not this test's to wait for.
inline bool process_dead(pid_t pid) {
  if (process_gone(pid)) return true;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

inline std::chrono::milliseconds since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t);
}

inline int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace plugin_tests
