// Test support for the hot-reload suites: a real Host over a private plugins directory (watched or not),
// the ways files arrive in that directory, and readers for what the probe fixture reports.
#pragma once

#include "eventually.hpp"
#include "host_fixture.hpp"
#include "reload_outbox.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace taskhost::testing {

using namespace std::chrono_literals;

// The probe fixture builds (tests/reload/CMakeLists.txt).
inline fs::path probe_a() { return fixture("reload-probe-a.so"); }
inline fs::path probe_b() { return fixture("reload-probe-b.so"); }
inline fs::path probe_broken() { return fixture("reload-probe-broken.so"); }
inline fs::path swap_1() { return fixture("reload-swap-1.so"); }
inline fs::path swap_2() { return fixture("reload-swap-2.so"); }

inline std::string read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Writes `bytes` at the end of `file` (created if missing) with one open/write/close.
inline void append_bytes(const fs::path& file, std::string_view bytes, bool truncate) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND) | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// `cp FROM TO` over an existing file: same inode, truncated then written.
inline void copy_over(const fs::path& from, const fs::path& to) { append_bytes(to, read_all(from), true); }

// `ln -s TARGET tmp && mv -T tmp LINK`: re-points `link` atomically.
inline void swap_symlink(const fs::path& target, const fs::path& link) {
  const fs::path tmp = link.parent_path() / ("." + link.filename().string() + ".link");
  fs::remove(tmp);
  fs::create_symlink(target, tmp);
  fs::rename(tmp, link);
}

// How many of this process's fds are memfds of plugin `name` (the loader names them taskhost-NAME-HASH).
inline int open_memfds(const std::string& name) {
  const std::string prefix = "/memfd:taskhost-" + name + "-";
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(entry.path(), ec);
    if (!ec && target.string().starts_with(prefix)) ++count;
  }
  return count;
}

// A field of a probe completion's output, the JSON string "key=value key=value ..." ("" if absent).
inline std::string output_field(const v1::TaskCompletion& c, const std::string& field) {
  const std::string text = " " + c.output().string_value() + " ";
  const std::string key = " " + field + "=";
  const auto at = text.find(key);
  if (at == std::string::npos) return {};
  const auto from = at + key.size();
  return text.substr(from, text.find(' ', from) - from);
}

// The generation a task's attempt started on, from the router's "started on P V (generation N, ...)"
// running-state detail; 0 if there is none.
inline uint64_t started_generation(const std::vector<v1::TaskEvent>& events, uint32_t attempt) {
  for (const auto& e : events) {
    if (!e.has_state() || e.state().state() != v1::RUNNING || e.attempt() != attempt) continue;
    const std::string& d = e.state().detail();
    const auto at = d.find("(generation ");
    if (at != std::string::npos) return std::stoull(d.substr(at + 12));
  }
  return 0;
}

// A Host over a private plugins directory. Files listed are put in place (by rename) before it starts.
struct ReloadRig {
  struct Options {
    bool watch = true;
    std::chrono::milliseconds settle{100};
    std::chrono::milliseconds rescan_interval{2000};
    std::chrono::milliseconds drain_deadline{0};
    bool migrate_on_reload = false;
    tasks::RouterOptions router;
  };

  explicit ReloadRig(std::vector<std::pair<fs::path, std::string>> files = {{probe_a(), "probe.so"}})
      : ReloadRig(Options{}, std::move(files)) {}
  ReloadRig(Options o, std::vector<std::pair<fs::path, std::string>> files = {{probe_a(), "probe.so"}}) {
    for (const auto& [from, as] : files) install_plugin_file(from, dir.path(), as);
    HostOptions ho;
    ho.router = std::move(o.router);
    ho.plugins_dir = dir.path();
    ho.watch = o.watch;
    ho.watcher.settle = o.settle;
    ho.watcher.rescan_interval = o.rescan_interval;
    ho.drain_deadline = o.drain_deadline;
    ho.migrate_on_reload = o.migrate_on_reload;
    host = std::make_unique<Host>(std::move(ho), outbox);
    const auto& scan = host->initial_scan();
    REQUIRE_MESSAGE(scan.errors.empty(), (scan.errors.empty() ? "" : scan.errors.front()));
  }

  fs::path path(const std::string& name) const { return dir.path() / name; }
  tasks::Router& router() { return host->router(); }

  // The generation serving new tasks for `name`, or null.
  registry::GenerationPtr current(const std::string& name = "probe.so") { return host->registry().current(path(name)); }
  std::string version(const std::string& name = "probe.so") {
    const auto g = current(name);
    return g ? g->version() : std::string();
  }
  uint64_t generation(const std::string& name = "probe.so") {
    const auto g = current(name);
    return g ? g->id() : 0;
  }
  // Waits until `name` serves `version`; returns its generation id (0 on timeout).
  uint64_t wait_version(const std::string& version, const std::string& name = "probe.so",
                        std::chrono::milliseconds timeout = 10s) {
    uint64_t id = 0;
    eventually([&] {
      const auto g = current(name);
      if (!g || g->version() != version) return false;
      id = g->id();
      return true;
    }, timeout);
    return id;
  }
  std::optional<PluginFileStatus> status(const std::string& name = "probe.so") {
    for (auto& s : host->plugin_status()) {
      if (s.file == path(name)) return s;
    }
    return std::nullopt;
  }
  // Runs one short task and returns its completion.
  std::optional<v1::TaskCompletion> run_short(const std::string& id, const std::string& kind = "probe.short") {
    const auto outcome = router().assign(assignment(id, kind, "1"));
    if (!outcome.accepted()) return std::nullopt;
    return outbox.wait_completion(id);
  }

  TempDir dir;
  ReloadOutbox outbox;  // declared before the host: it must outlive it
  std::unique_ptr<Host> host;
};

}  // namespace taskhost::testing
