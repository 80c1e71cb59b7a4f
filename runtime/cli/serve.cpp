// taskhost serve: the host process. Loads the config, opens the transport, loads the plugins, serves the
// local API, and runs until SIGTERM/SIGINT (drain, then exit 0). Plugin files that change are picked up
// by the directory watcher (unless [plugins] watch = false or --no-watch); SIGHUP reloads (Host::reload).
#include "api/server.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/serve_nats.hpp"
#include "common/crash_report.hpp"
#include "common/log.hpp"
#include "common/stop_signals.hpp"
#include "config/config.hpp"
#include "config/endpoint.hpp"
#include "config/host_options.hpp"
#include "host/crash_ledger.hpp"
#include "host/host.hpp"
#include "transport/local/local_transport.hpp"

#include <fmt/format.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <pthread.h>

namespace taskhost::cli {
namespace fs = std::filesystem;

namespace {

// Every thread the host starts inherits this mask, so the signals reach only sigwait in the main thread.
sigset_t block_host_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// A write into a pipe nobody reads any more (the log piped to a collector that restarted, `| head`) must
// fail with EPIPE, not end the host with SIGPIPE, silently, tasks and all. A handler that does nothing,
// rather than SIG_IGN: an ignored signal stays ignored across exec, and a program a plugin starts
// (exec.run) must get the default SIGPIPE it expects; a handler is reset to the default by exec.
void no_sigpipe_death() {
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGPIPE, &sa, nullptr);
}

config::Config load(const CommandLine& cl) {
  config::Config c = cl.has("config") ? config::load_config(cl.get<std::string>("config")) : config::Config{};
  if (cl.has("plugins")) c.plugins_dir = cl.get<std::string>("plugins");
  if (cl.has("state")) {
    c.state_dir = cl.get<std::string>("state");
    c.state_dir_given = true;
  }
  if (cl.has("api")) c.api_address = cl.get<std::string>("api");
  if (cl.has("transport")) c.transport = cl.get<std::string>("transport");
  if (cl.has("nats")) c.nats.url = cl.get<std::string>("nats");
  if (cl.has("nats-prefix")) c.nats.stream_prefix = nats_prefix_flag(cl);
  if (cl.has("worker-id")) c.worker_id = cl.get<std::string>("worker-id");
  if (cl.has("no-watch")) c.watch_plugins = false;
  if (cl.has("log-format")) {
    const auto f = log::parse_format(cl.get<std::string>("log-format"));
    if (!f) throw UsageError("--log-format must be text or json");
    c.log_format = *f;
  }
  if (c.transport != "local" && c.transport != "nats") throw UsageError("--transport must be local or nats");
  return c;
}

std::vector<config::Endpoint> endpoints(const config::Config& c) {
  std::vector<config::Endpoint> out;
  std::string why;
  auto e = config::parse_endpoint(c.api_address, &why);
  if (!e) throw UsageError(fmt::format("--api '{}': {}", c.api_address, why));
  out.push_back(*e);
  if (!c.api_unix_socket.empty()) {
    config::Endpoint u;
    u.is_unix = true;
    u.path = c.api_unix_socket;
    out.push_back(u);
  }
  return out;
}

// STATE_DIR/api.addr holds the address the API really listens on (port 0 resolved), for scripts.
void write_address_file(const fs::path& state_dir, const std::string& address) {
  const fs::path tmp = state_dir / "api.addr.tmp";
  {
    std::ofstream out(tmp);
    out << address << "\n";
  }
  fs::rename(tmp, state_dir / "api.addr");
}

void log_scan(const registry::ScanReport& report, const fs::path& dir) {
  for (const auto& f : report.loaded) log::info("plugins: loaded {}", f.string());
  for (const auto& f : report.removed) log::info("plugins: removed {}", f.string());
  for (const auto& e : report.errors) log::warn("plugins: {}", e);
  if (report.loaded.empty() && report.errors.empty() && report.removed.empty())
    log::info("plugins: no changes in {}", dir.string());
}

int serve_local(const config::Config& c, const sigset_t& signals) {
  config::require_plugins_dir(c);
  const auto listen = endpoints(c);
  transport::local::LocalOptions lo;
  lo.state_dir = c.state_dir;
  lo.default_heartbeat_secs = c.heartbeat_interval_secs;
  lo.max_plugin_crashes = c.max_plugin_crashes;
  lo.keep_ended = c.keep_ended;
  lo.finished_memory_bytes = c.ended_memory_bytes;
  transport::local::LocalTransport transport(lo);  // takes the state directory's lock first
  // The last run's crashes: counted against their tasks, or their plugin content refused in-process. From
  // here a fatal signal in a task's call or a plugin load is named on stderr and noted for the next run.
  CrashLedger ledger(c.state_dir);
  const crash_report::Installed crash_handler(ledger.note_fd());
  transport.record_crashes(ledger.task_crashes());
  ledger.settle();

  api::ServerOptions so;
  so.listen = listen;
  so.idle_timeout = c.api_idle_timeout;
  so.allowed_hosts = c.api_allowed_hosts;
  api::ApiServer server(so);
  server.bind();  // a taken address ends this run before a plugin is loaded or recovery touches any task

  HostOptions ho = config::host_options(c);
  ho.isolation.refused_in_process = ledger.quarantined();
  Host host(ho, transport);  // declared after the transport: destroyed first, while it can still publish
  log_scan(host.initial_scan(), c.plugins_dir);

  const auto attached = transport.attach(host.router());  // detached before the host is destroyed
  // The API too, declared before the host but serving it: stopped before the host on every path.
  struct StopServer {
    api::ApiServer& s;
    ~StopServer() { s.stop(); }
  } stop_server_on_exit{server};
  // Recovered tasks whose kind no plugin serves yet start when a scan loads one.
  host.registry().on_switch([&transport](const std::string& kind, const registry::Binding& now) {
    if (now) transport.kind_served(kind);
  });
  const auto rec = transport.recover();
  if (rec.restarted + rec.reattached + rec.canceled + rec.crashed + rec.orphaned + rec.waiting > 0) {
    log::info("recovery: {} queued task(s) restarted, {} running task(s) re-attached, {} canceled, {} message(s) "
              "redelivered{}{}{}",
              rec.restarted, rec.reattached, rec.canceled, rec.redelivered,
              rec.crashed == 0 ? std::string()
                               : fmt::format(", {} failed for crashing the host (max_plugin_crashes)", rec.crashed),
              rec.orphaned == 0 ? std::string()
                                : fmt::format(", {} failed orphaned (their kind cannot re-attach)", rec.orphaned),
              rec.waiting == 0 ? std::string()
                               : fmt::format(", {} waiting for a plugin that serves their kind", rec.waiting));
  }

  server.start(api::ApiContext{transport, host});
  const auto addresses = server.addresses();
  write_address_file(c.state_dir, addresses.front());
  for (const auto& a : addresses) log::info("api: listening on {}", a);
  log::info("taskhost serving (worker {}, plugins {}{}, state {})", ho.router.worker_id, c.plugins_dir.string(),
            ho.watch ? ", watched" : "", c.state_dir.string());

  const int sig = wait_for_stop(signals, [&] {
    log::info("SIGHUP: reloading {}", c.plugins_dir.string());
    log_scan(host.reload(), c.plugins_dir);
  });
  log::info("{}: draining (up to {} ms for running tasks; then those that can re-attach are left for the next "
            "run and the others canceled; again to exit at once)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", c.drain_grace.count());
  exit_on_next_stop(signals);
  transport.set_accepting(false);
  // Tasks still waiting for a slot stay queued in the store, and running tasks whose kind can re-attach
  // stay running there: the next run starts or re-attaches them, as after a crash.
  host.router().drain(c.drain_grace, tasks::Router::NotStarted::keep, tasks::Router::Running::leave_reattachable);
  server.stop();
  transport.detach();  // before "stopped": nothing calls the router after this
  std::error_code ec;
  fs::remove(c.state_dir / "api.addr", ec);
  log::info("stopped");
  return kExitOk;
}

}  // namespace

int serve_command(const Args& args) {
  CommandLine cl("serve", "serve [--config FILE] [--plugins DIR] [--api ADDR] [--state DIR] [--transport local|nats]",
                 "Runs the host: loads every plugin in the plugins directory, serves the local API, runs tasks.\n"
                 "SIGTERM/SIGINT drain (stop accepting, let running tasks finish up to drain_grace_ms, leave those\n"
                 "that can re-attach for the next run, or on NATS to another host at once, cancel the rest) and exit 0. Plugin files added, replaced or removed are picked up by themselves (unless\n"
                 "--no-watch); SIGHUP rescans the plugins directory. Flags override the config file.");
  cl.options().add_options()
      ("config,c", po::value<std::string>()->value_name("FILE"), "taskhost.toml (see samples/taskhost.toml)")
      ("plugins,p", po::value<std::string>()->value_name("DIR"), "plugins directory (default: ./plugins)")
      ("api", po::value<std::string>()->value_name("ADDR"), "HOST:PORT or unix:PATH for the local API (default 127.0.0.1:7411; port 0 = any free port)")
      ("state", po::value<std::string>()->value_name("DIR"), "state directory (default: ./.taskhost-state)")
      ("transport", po::value<std::string>()->value_name("local|nats"), "where tasks come from (default: local)")
      ("nats", po::value<std::string>()->value_name("URL"), "NATS server URL (implies nothing unless --transport nats)")
      ("nats-prefix", po::value<std::string>()->value_name("PREFIX"), "the deployment's stream_prefix (default TASKHOST)")
      ("worker-id", po::value<std::string>()->value_name("ID"), "this host's stable name (default: host name)")
      ("log-format", po::value<std::string>()->value_name("text|json"), "log line format (default: text)")
      ("no-watch", "do not watch the plugins directory; reload only on SIGHUP or `taskhost reload`");
  if (!cl.parse(args)) return kExitOk;
  const config::Config c = load(cl);
  if (c.transport == "nats" && cl.has("api")) {
    // Silently ignored, it suggested a local API that is not there (reload then only works by SIGHUP).
    throw UsageError("--api: serve --transport nats has no local API (clients use --nats; reload with SIGHUP)");
  }
  log::set_format(c.log_format);
  log::set_level(c.log_level);
  if (c.transport == "nats" && c.api_configured) {
    // A config shared with embedded hosts may well have one; ignored without a word, it suggested an API
    // that is not there.
    log::warn("config: the [api] table is ignored: serve --transport nats has no local API (clients use --nats; "
              "reload with SIGHUP)");
  }
  no_sigpipe_death();
  const sigset_t signals = block_host_signals();
  if (c.transport == "nats") return serve_nats(c, signals);
  return serve_local(c, signals);
}

}  // namespace taskhost::cli
