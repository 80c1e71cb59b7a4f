#include "transport/nats/nats_serve.hpp"

#include "host/state_lock.hpp"
#include "transport/nats/connection.hpp"

#include "common/crash_report.hpp"
#include "common/log.hpp"
#include "common/stop_signals.hpp"
#include "config/host_options.hpp"
#include "host/crash_ledger.hpp"
#include "host/host.hpp"
#include "transport/nats/nats_task_client.hpp"
#include "transport/nats/nats_transport.hpp"

#include <fmt/format.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <optional>

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
  // One host per state directory, as on the local transport: checked before anything else (connecting
  // may take up to connect_timeout), and before the ledger takes the notes another host may be writing.
  std::optional<StateLock> state_lock;
  if (c.state_dir_given) {
    std::error_code ec;
    std::filesystem::create_directories(c.state_dir, ec);  // an unusable one is named by the lock
    state_lock.emplace(c.state_dir);
  }
  NatsOptions options = nats_options(c.nats, worker_id);
  options.stop_requested = [&signals] { return stop_pending(signals); };  // a SIGTERM while the server is away
  // A connection the server closed for good ends the serve loop as a SIGTERM would, but without a drain:
  // nothing could be published. Exiting lets a supervisor start the host afresh, instead of a host that
  // looks alive to its process manager and serves no one.
  struct Lost {
    std::mutex mu;
    std::optional<std::string> why;
    bool stopping = false;  // past the serve loop: a SIGTERM now would be the "second one", an exit at once
  };
  auto lost = std::make_shared<Lost>();
  options.connection_lost = [lost](const std::string& why) {
    {
      std::lock_guard lock(lost->mu);
      if (lost->why) return;
      lost->why = why;
      if (lost->stopping) return;  // the drain under way ends quickly (its publishes fail) and exits 1
    }
    ::kill(::getpid(), SIGTERM);  // taken by wait_for_stop's sigwait (blocked in every other thread)
  };
  auto lost_why = [lost](bool stopping) {
    std::lock_guard lock(lost->mu);
    lost->stopping = lost->stopping || stopping;
    return lost->why;
  };
  NatsTransport transport(std::move(options));
  // A fatal signal in a task's call or a plugin load is named on stderr. With a state directory given, it
  // is also noted there (host/crash_ledger.hpp), and the next start refuses, in-process, a plugin content
  // that crashed the host while loading. Task crashes are only logged: on NATS a task's record counts its
  // starts, and max_deliver ends one that keeps crashing its hosts.
  std::optional<CrashLedger> ledger;
  if (c.state_dir_given) ledger.emplace(c.state_dir);
  const crash_report::Installed crash_handler(ledger ? ledger->note_fd() : -1);
  HostOptions ho = config::host_options(c);
  if (ledger) {
    for (const auto& crash : ledger->task_crashes()) {
      log::error("the last run died of {} in a call of task '{}' (kind '{}'); its starts count against max_deliver",
                 crash_report::signal_name(crash.signal), crash.task_id, crash.kind);
    }
    ledger->settle();
    ho.isolation.refused_in_process = ledger->quarantined();
  }

  // The same host options as the local transport: limits, deadlines, the watcher and hot reload. Declared
  // after the transport: destroyed first, while it can still publish.
  Host host(ho, transport);
  log_scan(host.initial_scan());
  transport.start(host.router(), host.registry());
  log::info("taskhost serving over NATS {} (worker {}, ack {}, plugins {})", redact_url(c.nats.url), worker_id,
            config::to_string(c.nats.ack_mode), c.plugins_dir.string());

  const int sig = wait_for_stop(signals, [&] {
    log::info("SIGHUP: reloading {}", c.plugins_dir.string());
    log_scan(host.reload());
  });
  auto stop_lost = [&](const std::string& why) {
    log::error("nats: stopping: the server closed this host's connection ({}); other hosts re-attach its running "
               "tasks from their records",
               why);
    transport.stop();
    return 1;
  };
  if (const auto why = lost_why(/*stopping=*/true)) return stop_lost(*why);
  log::info("{}: draining (up to {} ms for running tasks; then those that can re-attach are left to another host "
            "and the others canceled; again to exit at once)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", c.drain_grace.count());
  exit_on_next_stop(signals);
  transport.drain(c.drain_grace);
  if (const auto why = lost_why(true)) return stop_lost(*why);
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
