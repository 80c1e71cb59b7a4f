// GET /metrics: Prometheus text exposition (format 0.0.4), from what the local transport observed on
// the router's outbox, from the router's own counters (exact calls into each plugin generation, the
// timer's lateness) and from the registry's view of the plugin files.
#include "api/handlers.hpp"

#include "host/host.hpp"
#include "transport/local/local_transport.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <string>

namespace taskhost::api {
namespace {

std::string label(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string state_label(v1::TaskState s) {
  std::string name = v1::TaskState_Name(s);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  return name;
}

class Writer {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  template <typename V>
  void sample(std::string_view name, std::string_view labels, V value) {
    if (labels.empty()) out_ += fmt::format("{} {}\n", name, value);
    else out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// The error as one short label value: a load error can be a multi-line dlerror text.
std::string error_label(std::string_view error) {
  constexpr size_t kMax = 200;
  std::string one_line(error.substr(0, std::min(error.size(), kMax)));
  std::replace(one_line.begin(), one_line.end(), '\n', ' ');
  if (error.size() > kMax) one_line += "...";
  return label(one_line);
}

// Plugin files, their generations and what reloads did (Host::plugin_status, Host::reload_stats).
void plugin_metrics(Writer& w, Host& host) {
  const auto files = host.plugin_status();
  const ReloadStats reloads = host.reload_stats();
  std::map<std::string, uint64_t> by_state;
  uint64_t errors = 0;
  for (const auto& f : files) {
    ++by_state[f.state];
    if (!f.last_error.empty()) ++errors;
  }
  w.family("taskhost_plugin_files", "gauge", "Plugin files by state.");
  for (const auto& [state, n] : by_state) w.sample("taskhost_plugin_files", fmt::format("state=\"{}\"", label(state)), n);
  w.family("taskhost_plugin_load_errors", "gauge", "Plugin files whose newest version failed to load.");
  w.sample("taskhost_plugin_load_errors", "", errors);
  // A file whose new version failed keeps its previous generation serving (state "serving"), so the
  // error is shown here for every file that has one, whatever its state.
  w.family("taskhost_plugin_load_error", "gauge",
           "1 for each plugin file whose newest version failed to load, with the error (first 200 bytes).");
  for (const auto& f : files) {
    if (!f.last_error.empty())
      w.sample("taskhost_plugin_load_error",
               fmt::format("file=\"{}\",state=\"{}\",error=\"{}\"", label(f.file.string()), label(f.state),
                           error_label(f.last_error)),
               1);
  }

  w.family("taskhost_plugin_generation", "gauge", "The generation serving new tasks of each plugin file.");
  for (const auto& f : files) {
    if (f.current)
      w.sample("taskhost_plugin_generation",
               fmt::format("file=\"{}\",plugin=\"{}\",version=\"{}\"", label(f.file.string()),
                           label(f.current->plugin), label(f.current->version)),
               f.current->id);
  }
  w.family("taskhost_plugin_draining_generations", "gauge",
           "Older generations of each plugin file still running the tasks they started.");
  for (const auto& f : files)
    w.sample("taskhost_plugin_draining_generations", fmt::format("file=\"{}\"", label(f.file.string())), f.draining.size());
  w.family("taskhost_plugin_generation_active_tasks", "gauge",
           "Active tasks per live generation; role is current or draining.");
  auto active = [&](const PluginFileStatus& f, const GenerationStatus& g, std::string_view role) {
    w.sample("taskhost_plugin_generation_active_tasks",
             fmt::format("file=\"{}\",generation=\"{}\",version=\"{}\",role=\"{}\"", label(f.file.string()), g.id,
                         label(g.version), role),
             g.active_tasks);
  };
  for (const auto& f : files) {
    if (f.current) active(f, *f.current, "current");
    for (const auto& g : f.draining) active(f, g, "draining");
  }

  w.family("taskhost_plugin_scans_total", "counter", "Scans of the plugins directory: startup, watcher and reloads.");
  w.sample("taskhost_plugin_scans_total", "", reloads.scans);
  w.family("taskhost_plugin_reloads_total", "counter",
           "Reloads an operator asked for: SIGHUP, taskhost reload, POST /v1/reload.");
  w.sample("taskhost_plugin_reloads_total", "", reloads.operator_reloads);
  w.family("taskhost_plugin_generations_loaded_total", "counter", "New generations installed, by plugin file.");
  for (const auto& [file, n] : reloads.generations_loaded)
    w.sample("taskhost_plugin_generations_loaded_total", fmt::format("file=\"{}\"", label(file)), n);
  w.family("taskhost_plugin_load_failures_total", "counter",
           "Loads that failed or were refused (the previous version kept serving), by plugin file.");
  for (const auto& [file, n] : reloads.load_failures)
    w.sample("taskhost_plugin_load_failures_total", fmt::format("file=\"{}\"", label(file)), n);
  w.family("taskhost_plugin_tasks_migrated_total", "counter",
           "Re-attachable tasks moved to a new generation by a reload.");
  w.sample("taskhost_plugin_tasks_migrated_total", "", reloads.migrated_tasks);
  w.family("taskhost_plugin_drain_cancellations_total", "counter",
           "Tasks cancelled because their old generation's drain deadline passed.");
  w.sample("taskhost_plugin_drain_cancellations_total", "", host.drain_cancellations());
  if (const auto* watcher = host.watcher()) {
    const auto ws = watcher->stats();
    w.family("taskhost_plugin_watcher_watching", "gauge", "1 while the plugins directory watcher has its inotify watch.");
    w.sample("taskhost_plugin_watcher_watching", "", ws.watching ? 1 : 0);
    w.family("taskhost_plugin_watcher_events_total", "counter", "inotify events on plugin file names.");
    w.sample("taskhost_plugin_watcher_events_total", "", ws.events);
  }
}

}  // namespace

std::string metrics_text(transport::local::LocalTransport& transport, Host& host) {
  const auto m = transport.metrics();
  Writer w;

  w.family("taskhost_tasks", "gauge", "Tasks this host knows (active and recently ended), by kind and state.");
  for (const auto& [key, n] : m.tasks)
    w.sample("taskhost_tasks", fmt::format("kind=\"{}\",state=\"{}\"", label(key.first), state_label(key.second)), n);

  w.family("taskhost_active_tasks", "gauge", "Tasks pending, running or waiting for input in the router.");
  w.sample("taskhost_active_tasks", "", host.router().active_count());

  w.family("taskhost_tasks_submitted_total", "counter", "Tasks accepted through the local API, by kind.");
  for (const auto& [kind, n] : m.submitted_total)
    w.sample("taskhost_tasks_submitted_total", fmt::format("kind=\"{}\"", label(kind)), n);

  w.family("taskhost_tasks_completed_total", "counter", "Tasks that ended, by kind and terminal state.");
  for (const auto& [key, n] : m.completed_total)
    w.sample("taskhost_tasks_completed_total",
             fmt::format("kind=\"{}\",state=\"{}\"", label(key.first), state_label(key.second)), n);

  // Exact: counted by each kind executor as the router calls into the plugin, per live generation.
  const tasks::RouterStats rs = host.router().stats();
  w.family("taskhost_plugin_calls_total", "counter",
           "Calls into plugins by plugin, kind, generation and entry point (exact, per live generation).");
  for (const auto& e : rs.executors) {
    const std::string labels = fmt::format("plugin=\"{}\",kind=\"{}\",generation=\"{}\",version=\"{}\"",
                                           label(e.plugin), label(e.kind), e.generation, label(e.plugin_version));
    const std::pair<std::string_view, uint64_t> calls[] = {
        {"start", e.calls.start},       {"deliver", e.calls.deliver},         {"cancel", e.calls.cancel},
        {"reconcile", e.calls.reconcile}, {"can_reattach", e.calls.can_reattach}, {"detach", e.calls.detach},
        {"release", e.calls.release}};
    for (const auto& [call, n] : calls)
      if (n > 0) w.sample("taskhost_plugin_calls_total", fmt::format("{},call=\"{}\"", labels, call), n);
  }

  w.family("taskhost_deliveries_total", "counter", "Steering messages by kind and delivery outcome.");
  for (const auto& [key, n] : m.deliveries_total)
    w.sample("taskhost_deliveries_total", fmt::format("kind=\"{}\",outcome=\"{}\"", label(key.first), label(key.second)), n);

  w.family("taskhost_heartbeats_total", "counter", "Heartbeats published for running tasks, by kind.");
  for (const auto& [kind, n] : m.heartbeats_total)
    w.sample("taskhost_heartbeats_total", fmt::format("kind=\"{}\"", label(kind)), n);

  w.family("taskhost_heartbeat_lag_seconds", "gauge",
           "Longest time a running task of the kind is overdue for a heartbeat, beyond its interval.");
  for (const auto& [kind, lag] : m.heartbeat_lag_seconds)
    w.sample("taskhost_heartbeat_lag_seconds", fmt::format("kind=\"{}\"", label(kind)), lag);
  // The cause side of heartbeat lag: how late the host's one timer ran heartbeats and cancel deadlines.
  w.family("taskhost_timer_lateness_seconds", "gauge",
           "How late the host's timer (heartbeats, cancel deadlines) ran its most recent entry.");
  w.sample("taskhost_timer_lateness_seconds", "", rs.timer_lateness_seconds);
  w.family("taskhost_timer_lateness_max_seconds", "gauge", "The largest timer lateness since the host started.");
  w.sample("taskhost_timer_lateness_max_seconds", "", rs.timer_lateness_max_seconds);

  plugin_metrics(w, host);

  w.family("taskhost_watchers", "gauge", "Open watch streams.");
  w.sample("taskhost_watchers", "", m.watchers);
  w.family("taskhost_store_commits_total", "counter", "Transactions committed to the state store.");
  w.sample("taskhost_store_commits_total", "", m.store_commits);
  w.family("taskhost_store_failed_writes_total", "counter",
           "Writes to the state store that failed (full disk, read-only or corrupt file): what they recorded is lost.");
  w.sample("taskhost_store_failed_writes_total", "", m.store_failed_writes);
  return w.take();
}

}  // namespace taskhost::api
