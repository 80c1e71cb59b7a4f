#include "transport/nats/nats_serve.hpp"

#include "transport/nats/connection.hpp"

#include "common/crash_report.hpp"
#include "common/log.hpp"
#include "common/stop_signals.hpp"
#include "config/host_options.hpp"
#include "host/host.hpp"
#include "transport/nats/nats_task_client.hpp"
#include "transport/nats/nats_transport.hpp"

#include <fmt/format.h>

#include <filesystem>

namespace taskhost::transport::nats {

namespace {

void log_scan(const registry::ScanReport& report) {
  for (const auto& f : report.loaded) log::info("plugins: loaded {}", f.string());
  for (const auto& f : report.removed) log::info("plugins: removed {}", f.string());
  for (const auto& e : report.errors) log::warn("plugins: {}", e);
}

}  // namespace

int serve_nats_host(const config::Config& c, const sigset_t& signals) {
  config::require_plugins_dir(c);
  const std::string worker_id = config::effective_worker_id(c);
  NatsTransport transport(nats_options(c.nats, worker_id));
  // A fatal signal in a task's call or a plugin load is named on stderr. Nothing is noted for a next run
  // (a NATS host keeps no state directory): the task's record counts its starts, and max_deliver ends one
  // that keeps crashing its hosts; a plugin file that crashes the host while loading is not refused.
  const crash_report::Installed crash_handler(-1);

  // The same host options as the local transport: limits, deadlines, the watcher and hot reload. Declared
  // after the transport: destroyed first, while it can still publish.
  Host host(config::host_options(c), transport);
  log_scan(host.initial_scan());
  transport.start(host.router(), host.registry());
  log::info("taskhost serving over NATS {} (worker {}, ack {}, plugins {})", redact_url(c.nats.url), worker_id,
            config::to_string(c.nats.ack_mode), c.plugins_dir.string());

  const int sig = wait_for_stop(signals, [&] {
    log::info("SIGHUP: reloading {}", c.plugins_dir.string());
    log_scan(host.reload());
  });
  log::info("{}: draining (up to {} ms for running tasks, then cancel; again to exit at once)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", c.drain_grace.count());
  exit_on_next_stop(signals);
  transport.drain(c.drain_grace);
  transport.stop();
  log::info("stopped");
  return 0;
}

std::unique_ptr<transport::TaskClient> make_nats_client(const config::NatsConfig& config, const std::string& url) {
  NatsOptions o = nats_options(config, "client");
  if (!url.empty()) o.url = url;
  o.connect_timeout = std::chrono::seconds(5);
  return std::make_unique<NatsTaskClient>(o);
}

std::vector<v1::TaskCompletion> discover_hosts(const config::NatsConfig& config, const std::string& url,
                                               std::chrono::milliseconds wait) {
  NatsOptions o = nats_options(config, "client");
  if (!url.empty()) o.url = url;
  o.connect_timeout = std::chrono::seconds(5);
  return NatsTaskClient(o).discover(wait);
}

}  // namespace taskhost::transport::nats
