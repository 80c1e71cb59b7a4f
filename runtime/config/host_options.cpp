#include "config/host_options.hpp"

namespace taskhost::config {

HostOptions host_options(const Config& c) {
  HostOptions ho;
  ho.plugins_dir = c.plugins_dir;
  ho.router.worker_id = effective_worker_id(c);
  ho.router.max_active = c.max_active;
  ho.router.kind_limits.insert(c.kind_limits.begin(), c.kind_limits.end());
  ho.router.cancel_deadline = c.cancel_deadline;
  ho.router.worker_threads = c.worker_threads;
  ho.router.max_worker_threads = c.max_worker_threads;
  ho.router.max_plugin_payload = c.max_plugin_payload;
  ho.router.max_plugin_crashes = c.max_plugin_crashes;
  ho.watch = c.watch_plugins;
  ho.watcher.settle = c.watch_settle;
  ho.watcher.rescan_interval = c.watch_rescan_interval;
  ho.drain_deadline = c.drain_deadline;
  ho.load_timeout = c.load_timeout;
  ho.migrate_on_reload = c.migrate_on_reload;
  ho.isolation.by_default = c.isolation;
  ho.isolation.by_file = c.file_isolation;
  ho.isolation.process.program = c.plugin_process_program;
  ho.isolation.process.call_timeout = c.plugin_process_call_timeout;
  return ho;
}

}  // namespace taskhost::config
