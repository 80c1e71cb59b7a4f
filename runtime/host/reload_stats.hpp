// What the host's plugin reloads did since it started, for GET /metrics: how many scans ran and how many
// of them an operator asked for (SIGHUP, `taskhost reload`, POST /v1/reload), and per file how many new
// generations were installed and how many loads failed. The state right now (current generation, the
// ones draining, their tasks, the last error) is Host::plugin_status(); this is only what counts up.
//
// Thread rule: record_*() and snapshot() are safe from any thread (scans run on the watcher's thread and
// on API workers at the same time).
#pragma once

#include "registry/plugin_directory.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace taskhost {

struct ReloadStats {
  uint64_t scans = 0;             // every scan: startup, the watcher, operator reloads
  uint64_t operator_reloads = 0;  // Host::reload calls
  uint64_t migrated_tasks = 0;    // re-attachable tasks moved to a new generation by a switch or a reload
  std::map<std::string, uint64_t> generations_loaded;  // file -> new generations installed
  std::map<std::string, uint64_t> load_failures;       // file -> failed loads (and refused installs)
};

class ReloadCounters {
 public:
  // One finished scan. `known_files` are the files the registry knows, to attribute each "FILE: reason"
  // error of the report to its file (an error naming no known file, like an unreadable directory, is
  // counted under the text before its first ": ").
  void record_scan(const registry::ScanReport& report, const std::vector<std::filesystem::path>& known_files);
  void record_operator_reload();
  void record_migrated(size_t tasks);
  ReloadStats snapshot() const;

 private:
  mutable std::mutex mu_;
  ReloadStats stats_;  // guarded by mu_
};

}  // namespace taskhost
