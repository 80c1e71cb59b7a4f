#include "host/plugin_status.hpp"

#include <algorithm>

namespace taskhost {
namespace {

GenerationStatus describe(const plugin::Generation& g, const std::map<uint64_t, size_t>& active) {
  const auto it = active.find(g.id());
  return GenerationStatus{g.id(), g.name(), g.version(), it == active.end() ? 0 : it->second};
}

std::vector<std::string> kinds_of(const plugin::Generation& g) {
  std::vector<std::string> kinds;
  for (const auto& executor : g.executors()) kinds.push_back(executor->kind());
  return kinds;
}

}  // namespace

std::vector<PluginFileStatus> plugin_status(const registry::KindRegistry& registry, const tasks::Router& router) {
  const std::map<uint64_t, size_t> active = router.tasks_by_generation();
  std::vector<PluginFileStatus> out;
  for (registry::FileStatus& file : registry.files()) {
    PluginFileStatus status;
    status.file = file.file;
    status.state = file.state;
    status.last_error = file.last_error;
    std::sort(file.draining.begin(), file.draining.end(),
              [](const auto& a, const auto& b) { return a->id() < b->id(); });
    if (file.current) {
      status.current = describe(*file.current, active);
      status.kinds = kinds_of(*file.current);
    } else if (!file.draining.empty()) {
      status.kinds = kinds_of(*file.draining.back());
    }
    for (const auto& g : file.draining) status.draining.push_back(describe(*g, active));
    out.push_back(std::move(status));
  }
  return out;
}

}  // namespace taskhost
