// What `taskhost plugins` (and GET /v1/plugins, /metrics) shows per plugin file: its kinds, state, last
// load error, and each of its generations still alive — the current one and those draining — with the
// number of active tasks each one runs.
//
// Plain values: nothing here keeps a generation alive. Thread rule: build from any thread.
#pragma once

#include "registry/kind_registry.hpp"
#include "tasks/router.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace taskhost {

struct GenerationStatus {
  uint64_t id = 0;
  std::string plugin;   // the plugin's name
  std::string version;  // the plugin's version
  size_t active_tasks = 0;  // started and not ended (Router::tasks_by_generation)
};

struct PluginFileStatus {
  std::filesystem::path file;
  std::string state;       // "serving", "failed", "removed", "draining" (KindRegistry::files)
  std::string last_error;  // why the newest version of the file did not load; empty if it did
  std::vector<std::string> kinds;  // of the current generation, else of the newest draining one
  std::optional<GenerationStatus> current;  // serving new tasks
  std::vector<GenerationStatus> draining;   // older generations still running tasks, oldest first
};

// Every file the registry knows, in path order.
std::vector<PluginFileStatus> plugin_status(const registry::KindRegistry& registry, const tasks::Router& router);

}  // namespace taskhost
