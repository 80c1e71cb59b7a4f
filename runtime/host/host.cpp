#include "host/host.hpp"

#include "common/log.hpp"

namespace taskhost {

Host::Host(HostOptions options, transport::TaskOutbox& outbox)
    : migrate_on_reload_(options.migrate_on_reload),
      registry_(std::make_unique<registry::KindRegistry>()),
      router_(std::make_unique<tasks::Router>(std::move(options.router), *registry_, outbox)),
      plugins_(std::make_unique<registry::PluginDirectory>(options.plugins_dir, *registry_, router_->host_api(),
                                                          options.load_timeout, options.isolation)),
      drainer_(std::make_unique<GenerationDrainer>(*router_, options.drain_deadline)) {
  plugins_->on_scan([this](const registry::ScanReport& report) { after_scan(report); });
  if (options.watch) watcher_ = std::make_unique<registry::DirectoryWatcher>(*plugins_, options.watcher);
  initial_scan_ = plugins_->scan();
  // A host that serves nothing refuses every task: most likely the wrong directory, or a deploy that
  // has not copied the files yet. Said once, at start.
  if (registry_->bindings().empty()) {
    log::warn("plugins: no plugin serves any kind: {} holds no loadable .so file; every task is refused (or, on "
              "NATS, left queued) until one is added{}",
              options.plugins_dir.string(), options.watch ? " (the directory is watched)" : " and `taskhost reload` runs");
  }
  // A per-file setting for a name the directory does not have is most likely a typo (names are
  // case-sensitive), and would silently leave that plugin in-process.
  for (const auto& [name, isolation] : options.isolation.by_file) {
    std::error_code ec;
    if (!std::filesystem::exists(options.plugins_dir / name, ec)) {
      log::warn("plugins: [plugins.files.\"{}\"] names no file in {} (yet); names are case-sensitive", name,
                options.plugins_dir.string());
    }
  }
}

Host::~Host() {
  if (watcher_) watcher_->stop();  // no scan starts any more
  drainer_->stop();                // no drain deadline cancels any more
  router_->shutdown();             // no plugin call in flight, every task released
  watcher_.reset();
  plugins_.reset();
  registry_->clear();  // executors destroyed while the router's sink table is still valid
  drainer_.reset();
  router_.reset();
}

void Host::after_scan(const registry::ScanReport& report) {
  std::vector<std::filesystem::path> known;
  if (!report.errors.empty()) {
    for (const auto& f : registry_->files()) known.push_back(f.file);
  }
  reload_counters_.record_scan(report, known);
  for (const auto& retired : report.retired) drainer_->track(retired);
  if (migrate_on_reload_ && !report.retired.empty()) {
    if (const size_t moved = migrate_all()) log::info("reload: moving {} re-attachable task(s) to the new generations", moved);
  }
}

size_t Host::migrate_all() {
  size_t moved = 0;
  for (const auto& binding : registry_->bindings()) moved += router_->migrate(binding.executor->kind());
  reload_counters_.record_migrated(moved);
  return moved;
}

registry::ScanReport Host::reload(bool migrate) {
  reload_counters_.record_operator_reload();
  registry::ScanReport report = plugins_->scan();
  // after_scan already moved tasks for migrate_on_reload, and only when this scan switched something; an
  // operator asking for it also moves tasks left on generations retired by earlier switches.
  if (migrate) {
    report.migrated = migrate_all();
    if (report.migrated > 0) {
      log::info("reload: moving {} re-attachable task(s) to the new generations", report.migrated);
    }
  }
  return report;
}

std::vector<PluginFileStatus> Host::plugin_status() const { return taskhost::plugin_status(*registry_, *router_); }

}  // namespace taskhost
