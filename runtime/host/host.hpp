// The host: the registry, the router and the plugins directory wired together, in the order that makes
// shutdown safe. A transport constructs its outbox, then a Host with it, then feeds host.router().
//
// Shutdown order is the point of this class: the router stops first (no plugin call in flight, every
// task released), then the registry drops its generations (executors destroyed while the sink table is
// still valid), and only then does the router's memory go away.
#pragma once

#include "registry/kind_registry.hpp"
#include "registry/plugin_directory.hpp"
#include "tasks/router.hpp"
#include "transport/outbox.hpp"

#include <filesystem>
#include <memory>

namespace taskhost {

struct HostOptions {
  tasks::RouterOptions router;
  std::filesystem::path plugins_dir;
};

class Host {
 public:
  // Scans the plugins directory once; bad files are recorded in the registry, never thrown.
  Host(HostOptions options, transport::TaskOutbox& outbox);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  tasks::Router& router() { return *router_; }
  registry::KindRegistry& registry() { return *registry_; }
  registry::PluginDirectory& plugins() { return *plugins_; }
  const registry::ScanReport& initial_scan() const { return initial_scan_; }

 private:
  std::unique_ptr<registry::KindRegistry> registry_;
  std::unique_ptr<tasks::Router> router_;
  std::unique_ptr<registry::PluginDirectory> plugins_;
  registry::ScanReport initial_scan_;
};

}  // namespace taskhost
