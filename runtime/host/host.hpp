// The host: the registry, the router, the plugins directory, its watcher and the drain deadlines wired
// together, in the order that makes shutdown safe. A transport constructs its outbox, then a Host with
// it, then feeds host.router().
//
// Hot reload: every scan of the plugins directory — the watcher's, reload(), or a direct
// plugins().scan() — switches new assignments to the new generations at once (KindRegistry), while the
// tasks already running stay on the generation that started them; those retired generations are
// released when their last task ends, and after `drain_deadline` their remaining tasks are cancelled.
// With `migrate_on_reload` (or reload(true)), re-attachable tasks move to the new generation instead
// (re-started from their checkpoint with attempt + 1).
//
// Shutdown order is the point of this class: the watcher stops first (no scan starts), then the drain
// deadlines, then the router (no plugin call in flight, every task released), then the registry drops
// its generations (executors destroyed while the sink table is still valid), and only then does the
// router's memory go away.
#pragma once

#include "host/generation_drainer.hpp"
#include "host/plugin_status.hpp"
#include "host/reload_stats.hpp"
#include "registry/directory_watcher.hpp"
#include "registry/kind_registry.hpp"
#include "registry/plugin_directory.hpp"
#include "tasks/router.hpp"
#include "transport/outbox.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <vector>

namespace taskhost {

struct HostOptions {
  tasks::RouterOptions router;
  std::filesystem::path plugins_dir;
  bool watch = false;                           // reload by itself when files in plugins_dir change
  registry::WatcherOptions watcher;             // settle time and periodic rescan, with `watch`
  std::chrono::milliseconds drain_deadline{0};  // after a switch, cancel the old generation's tasks; 0 = never
  // A plugin file whose loading (initializers, executor factories) takes longer fails, and the scan goes
  // on without it (registry/bounded_load.hpp); 0 = wait for as long as it takes.
  std::chrono::milliseconds load_timeout{10'000};
  bool migrate_on_reload = false;               // move re-attachable tasks to the new generation on every switch
  plugin::IsolationPolicy isolation;            // which plugin files run in a process of their own
};

class Host {
 public:
  // Scans the plugins directory once; bad files are recorded in the registry, never thrown. With
  // `watch`, the watcher is in place before that first scan, so no change is missed.
  Host(HostOptions options, transport::TaskOutbox& outbox);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  tasks::Router& router() { return *router_; }
  registry::KindRegistry& registry() { return *registry_; }
  registry::PluginDirectory& plugins() { return *plugins_; }
  const registry::ScanReport& initial_scan() const { return initial_scan_; }

  // The operator's reload (SIGHUP, `taskhost reload`, POST /v1/reload): rescans the plugins directory now,
  // retrying files that failed before. With `migrate` (or migrate_on_reload), every re-attachable task
  // running on an older generation of its kind then moves to the current one. Safe from any thread
  // except a plugin thread (loading runs plugin factories; a replaced generation may be destroyed here).
  registry::ScanReport reload(bool migrate = false);

  // Every plugin file with its kinds, state, last error and live generations with their active tasks.
  // Safe from any thread.
  std::vector<PluginFileStatus> plugin_status() const;

  // The watcher, or null without `watch`.
  const registry::DirectoryWatcher* watcher() const { return watcher_.get(); }
  // Tasks cancelled because a drain deadline passed, since start.
  uint64_t drain_cancellations() const { return drainer_->cancelled(); }
  // What reloads did since start (scans, operator reloads, generations loaded and failures per file).
  ReloadStats reload_stats() const { return reload_counters_.snapshot(); }

 private:
  void after_scan(const registry::ScanReport& report);  // any scanning thread
  size_t migrate_all();                                 // moves re-attachable tasks to current generations

  const bool migrate_on_reload_;
  ReloadCounters reload_counters_;  // before plugins_: its scan listener records here
  std::unique_ptr<registry::KindRegistry> registry_;
  std::unique_ptr<tasks::Router> router_;
  std::unique_ptr<registry::PluginDirectory> plugins_;
  std::unique_ptr<GenerationDrainer> drainer_;
  std::unique_ptr<registry::DirectoryWatcher> watcher_;
  registry::ScanReport initial_scan_;
};

}  // namespace taskhost
