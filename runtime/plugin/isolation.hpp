// Which plugin files run in a process of their own ([plugins] isolation, per file in
// [plugins.files."NAME.so"]), and how such processes are run.
//
// In-process is the fast default: a plugin call is a function call. isolation = "process" costs a round
// trip over a socket per call and per sink call, and buys that a plugin's crash (abort, SIGSEGV, a corrupt
// image that kills the dynamic loader) costs only that plugin's running tasks, not the host: the one whose
// call crashed it fails, the others are re-attached in its next process (isolated/isolated_plugin.hpp).
#pragma once

#include "plugin/isolated/process_options.hpp"

#include <filesystem>
#include <map>
#include <string>

namespace taskhost::plugin {

enum class Isolation { in_process, process };

struct IsolationPolicy {
  Isolation by_default = Isolation::in_process;
  std::map<std::string, Isolation> by_file;  // plugin file name ("NAME.so") → its isolation
  isolated::ProcessOptions process;          // how isolated plugins' processes run
  // Contents (SHA-256, hex) that crashed the host while it loaded them in-process, with why they are not
  // loaded in-process again (host/crash_ledger.hpp). Isolated, they load as any file.
  std::map<std::string, std::string> refused_in_process;

  Isolation of(const std::filesystem::path& file) const {
    const auto it = by_file.find(file.filename().string());
    return it == by_file.end() ? by_default : it->second;
  }
};

}  // namespace taskhost::plugin
