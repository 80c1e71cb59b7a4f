// What keeps a generation's plugin code alive while its executors exist: the dlopen'ed library
// (loaded_library.hpp) in-process, or the plugin process (isolated/isolated_plugin.hpp). A Generation
// destroys its executors first and this afterwards, whichever it is.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace taskhost::plugin {

// An isolated plugin's process, for operators (`taskhost plugins --json`).
struct PluginProcessInfo {
  pid_t pid = -1;         // -1 while it is down (crashed, waiting to be started again)
  uint64_t restarts = 0;  // processes started after the first
  std::string down;       // while it is down: why, and what happens next
};

class LoadedCode {
 public:
  virtual ~LoadedCode() = default;
  // Set when the code runs in a process of its own. Safe from any thread.
  virtual std::optional<PluginProcessInfo> process() const { return std::nullopt; }

 protected:
  LoadedCode() = default;
  LoadedCode(const LoadedCode&) = delete;
  LoadedCode& operator=(const LoadedCode&) = delete;
};

}  // namespace taskhost::plugin
