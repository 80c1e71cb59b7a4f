// Operating a host through the real binary: `plugins` (with a garbage .so in the directory), `reload` and
// SIGHUP picking up a new file, GET /metrics, the API on a unix socket, JSON log lines, and SIGTERM
// draining (running tasks are canceled after the grace period; the host exits 0).
#include "cli_harness.hpp"
#include "eventually.hpp"
#include "host_metrics.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <sys/wait.h>

#include <csignal>
#include <fstream>
#include <thread>

using namespace taskhost::clitest;
namespace json = boost::json;

namespace {

bool has_state(const json::object& s, const char* state) { return str(s, "state") == state; }

// Submits a minute-long timer.wait task `id` and waits until it runs.
void start_long_timer(const Host& host, const std::string& id) {
  REQUIRE(host.cli({"submit", "timer.wait", "--id", id, "--input", R"({"ms":60000})"}).code == 0);
  REQUIRE(has_state(wait_for_status(host, id, [](const json::object& o) { return has_state(o, "RUNNING"); }), "RUNNING"));
}

}  // namespace

TEST_CASE("a garbage .so does not stop the host: plugins shows its error, other kinds serve") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  std::ofstream(plugins / "garbage.so") << "\x7f" "ELF but not really; just bytes";
  Host host(plugins, dir.path() / "state");

  const Result r = host.cli({"plugins", "--json"});
  INFO(r);
  REQUIRE(r.code == 0);
  const auto root = parse_json(r.out).as_object();
  const auto* garbage = find_plugin(root, "garbage.so");
  REQUIRE(garbage != nullptr);
  CHECK(str(*garbage, "state") == "failed");
  CHECK_FALSE(str(*garbage, "last_error").empty());
  const auto* hello = find_plugin(root, "hello-c.so");
  REQUIRE(hello != nullptr);
  CHECK(str(*hello, "state") == "serving");
  CHECK(str(*hello, "plugin") == "hello-c");
  CHECK(str(*hello, "version") == "1.0.0");
  CHECK(hello->at("generation").as_int64() > 0);
  CHECK(str(*hello, "last_error").empty());

  const Result table = host.cli({"plugins"});
  CHECK(table.out.find("garbage.so") != std::string::npos);
  CHECK(table.out.find("failed") != std::string::npos);
  CHECK(table.out.find("hello.greet") != std::string::npos);

  const Result greet = host.cli({"submit", "hello.greet", "--input", R"({"name":"Ada"})", "--wait"});
  CHECK(greet.code == 0);
  CHECK(greet.out == "Hello, Ada!\n");
  CHECK(host.log().find("garbage.so") != std::string::npos);  // the failure is logged too
}

TEST_CASE("reload and SIGHUP load a plugin file added while the host runs") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  Host host(plugins, dir.path() / "state", {"--no-watch"});  // the watcher would beat `reload` to the file
  CHECK(host.cli({"submit", "interactive.echo", "--input", "{}"}).code == 1);  // not there yet

  fs::copy_file(built_plugin("cpp-interactive.so"), plugins / "cpp-interactive.so");
  const Result r = host.cli({"reload", "--json"});
  INFO(r);
  REQUIRE(r.code == 0);
  const auto report = parse_json(r.out).as_object();
  REQUIRE(report.at("loaded").as_array().size() == 1);
  CHECK(fs::path(std::string(report.at("loaded").as_array()[0].as_string())).filename() == "cpp-interactive.so");
  const Result echo = host.cli({"submit", "interactive.echo", "--input", R"({"x":1})", "--wait", "--json"});
  INFO(echo);
  CHECK(echo.code == 0);
  CHECK(host.cli({"reload"}).out == "no changes\n");

  fs::copy_file(fixture_plugin("hold.so"), plugins / "hold.so");
  host.signal(SIGHUP);
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    const auto root = parse_json(host.cli({"plugins", "--json"}).out).as_object();
    const auto* hold = find_plugin(root, "hold.so");
    served = hold && str(*hold, "state") == "serving";
    if (!served) std::this_thread::sleep_for(50ms);
  }
  CHECK(served);
}

TEST_CASE("GET /metrics counts tasks by kind and state, plugin calls and load errors") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  std::ofstream(plugins / "broken.so") << "nope";
  Host host(plugins, dir.path() / "state");
  REQUIRE(host.cli({"submit", "hello.greet", "--input", R"({"name":"M"})", "--wait"}).code == 0);
  REQUIRE(host.cli({"submit", "hello.greet", "--input", "{}", "--wait"}).code == 3);

  const std::string m = client_of(host).metrics_text();
  INFO(m);
  CHECK(m.find("# TYPE taskhost_tasks gauge") != std::string::npos);
  CHECK(m.find("taskhost_tasks{kind=\"hello.greet\",state=\"succeeded\"} 1") != std::string::npos);
  CHECK(m.find("taskhost_tasks{kind=\"hello.greet\",state=\"failed\"} 1") != std::string::npos);
  CHECK(m.find("taskhost_tasks_completed_total{kind=\"hello.greet\",state=\"succeeded\"} 1") != std::string::npos);
  // Exact calls into the plugin, counted by its executor: two starts, no deliveries.
  auto calls = [&](std::string_view call) {  // the sample's value, or -1 when absent
    for (const auto& l : lines(m)) {
      if (l.starts_with("taskhost_plugin_calls_total{plugin=\"hello-c\",kind=\"hello.greet\",generation=\"") &&
          l.find(",version=\"1.0.0\",call=\"" + std::string(call) + "\"} ") != std::string::npos)
        return std::stol(l.substr(l.rfind(' ') + 1));
    }
    return -1L;
  };
  CHECK(calls("start") == 2);
  CHECK(calls("deliver") == -1);
  CHECK(m.find("# TYPE taskhost_timer_lateness_seconds gauge") != std::string::npos);
  CHECK(m.find("taskhost_plugin_load_errors 1") != std::string::npos);
  CHECK(m.find("taskhost_plugin_load_error{file=\"" + (plugins / "broken.so").string() + "\",state=\"failed\",error=\"") !=
        std::string::npos);
  CHECK(m.find("# TYPE taskhost_heartbeat_lag_seconds gauge") != std::string::npos);
}

TEST_CASE("kinds no plugin serves are counted under one /metrics label; a kind over 256 bytes is refused") {
  // QA submitted a thousand made-up kinds: each added three series to /metrics for good, and one 7 MB
  // kind made every listing and /metrics scrape carry it four times.
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  Host host(plugins, dir.path() / "state");
  for (int i = 0; i < 5; ++i) {
    const Result r = host.cli({"submit", "typo" + std::to_string(i) + ".kind", "--input", "{}"});
    CHECK(r.code == 1);
  }
  REQUIRE(host.cli({"submit", "hello.greet", "--input", R"({"name":"M"})", "--wait"}).code == 0);
  const Result long_kind = host.cli({"submit", std::string(300, 'k'), "--input", "{}"});
  CHECK(long_kind.code != 0);
  CHECK(long_kind.err.find("field 'kind' (execute.component_id) is longer than 256 characters") != std::string::npos);

  const std::string m = client_of(host).metrics_text();
  INFO(m);
  CHECK(m.find("typo") == std::string::npos);
  CHECK(m.find("kkkk") == std::string::npos);
  CHECK(m.find("taskhost_tasks_submitted_total{kind=\"(unserved)\"} 5") != std::string::npos);
  CHECK(m.find("taskhost_tasks_completed_total{kind=\"(unserved)\",state=\"failed\"} 5") != std::string::npos);
  CHECK(m.find("taskhost_tasks{kind=\"(unserved)\",state=\"failed\"} 5") != std::string::npos);
  CHECK(m.find("taskhost_tasks_submitted_total{kind=\"hello.greet\"} 1") != std::string::npos);
}

TEST_CASE("the API on a unix socket, with JSON log lines") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  const std::string sock = "unix:" + (dir.path() / "th.sock").string();
  Host host(plugins, dir.path() / "state", {"--log-format", "json"}, sock);
  CHECK(host.api() == sock);
  const Result r = host.cli({"submit", "hello.greet", "--input", R"({"name":"Sock"})", "--wait"});
  INFO(r);
  CHECK(r.out == "Hello, Sock!\n");
  // A second host on the same socket is refused, as on a TCP port in use; the first stays reachable.
  const Result second = run({"serve", "--plugins", plugins.string(), "--state", (dir.path() / "state2").string(),
                             "--api", sock},
                            {}, 15s);
  INFO(second);
  CHECK(second.code == 1);
  CHECK(second.err.find("Address already in use") != std::string::npos);
  CHECK(host.cli({"plugins"}).code == 0);
  // A client given the host's config finds the API there; a config that cannot be read is an error
  // naming it (it used to be ignored without --nats).
  const fs::path conf = dir.path() / "client.toml";
  std::ofstream(conf) << "[api]\naddress = \"" << sock << "\"\n";
  const Result via_config = run({"submit", "hello.greet", "--input", R"({"name":"Conf"})", "--wait", "--config", conf.string()});
  INFO(via_config);
  CHECK(via_config.out == "Hello, Conf!\n");
  const Result bad_config = run({"status", "--config", (dir.path() / "missing.toml").string()});
  INFO(bad_config);
  CHECK(bad_config.code != 0);
  CHECK(bad_config.err.find("missing.toml") != std::string::npos);
  for (const auto& line : lines(host.log())) {
    const auto o = parse_json(line).as_object();
    CHECK(o.contains("ts"));
    CHECK(o.contains("level"));
    CHECK(o.contains("msg"));
  }
}

TEST_CASE("SIGTERM drains: after the grace, tasks that can re-attach are left for the next run, the rest canceled") {
  // A clean stop used to cancel every task still running, for good, while a crash or SIGKILL kept them
  // (QA): a routine restart was the one way to lose long work.
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("cpp-interactive.so"), fixture_plugin("hold.so")});
  const fs::path cfg = dir.path() / "taskhost.toml";
  std::ofstream(cfg) << "[tasks]\ndrain_grace_ms = 300\ncancel_deadline_ms = 2000\n";
  Host host(plugins, dir.path() / "state", {"--config", cfg.string()});
  REQUIRE(host.cli({"submit", "interactive.count", "--input", R"({"steps":500,"delay_ms":50})", "--id", "long"}).code == 0);
  REQUIRE(host.cli({"submit", "interactive.count", "--input", R"({"steps":2,"delay_ms":10})", "--id", "short"}).code == 0);
  REQUIRE(host.cli({"submit", "hold.forever", "--id", "stuck"}).code == 0);  // its kind cannot re-attach
  for (const char* id : {"long", "stuck"}) {
    REQUIRE(has_state(wait_for_status(host, id, [](const json::object& o) { return has_state(o, "RUNNING"); }), "RUNNING"));
  }
  wait_for_status(host, "long", [](const json::object& o) {
    return o.contains("progress") && obj(o, "progress").contains("current") &&
           obj(o, "progress").at("current").to_number<double>() >= 2;  // it has checkpointed
  });
  wait_for_status(host, "short", [](const json::object& o) { return has_state(o, "SUCCEEDED"); });

  Background watcher({"watch", "--json", "--api", host.api()});  // open until the host stops
  Background long_watcher({"watch", "long", "--api", host.api()});
  REQUIRE(wait_for_watchers(host, 2));
  host.signal(SIGTERM);
  const auto status = host.wait_exit(15s);
  INFO(host.log());
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK_FALSE(fs::exists(dir.path() / "state" / "api.addr"));
  CHECK(host.log().find("SIGTERM: draining") != std::string::npos);
  CHECK(host.log().find("task 'long' (interactive.count): left for the next run") != std::string::npos);
  // The watch of the one task ended with the host, not with the task: it says so, and fails.
  const Result watched_long = long_watcher.finish(10s);
  INFO(watched_long);
  CHECK(watched_long.code == 1);
  CHECK(watched_long.err.find("the watch of task 'long' ended before the task did") != std::string::npos);
  // A watch open during the drain saw the stuck task end canceled, and no end of the long one; ended by
  // the host, not by its own --timeout, it says so and fails (QA: it exited 0, silently).
  const Result watched = watcher.finish(10s);
  INFO(watched);
  CHECK(watched.code == 1);
  CHECK(watched.err.find("the watch ended before its --timeout: the host ended it") != std::string::npos);
  CHECK(watched.out.find(R"("completion":{"task_id":"stuck")") != std::string::npos);
  CHECK(watched.out.find(R"("completion":{"task_id":"long")") == std::string::npos);

  // The next run re-attaches the long task from its checkpoint, as after a crash.
  Host again(plugins, dir.path() / "state");
  const auto s = wait_for_status(again, "long", [](const json::object& o) { return has_state(o, "RUNNING"); });
  CHECK(has_state(s, "RUNNING"));
  CHECK(s.at("attempt").to_number<int>() == 2);
  const auto stuck = wait_for_status(again, "stuck", [](const json::object& o) { return !str(o, "state").empty(); });
  CHECK(has_state(stuck, "CANCELED"));
  CHECK(str(obj(stuck, "completion"), "state") == "CANCELED");
  CHECK(has_state(wait_for_status(again, "short", [](const json::object&) { return true; }), "SUCCEEDED"));
  CHECK(again.cli({"cancel", "long"}).code == 0);
}

TEST_CASE("a program exec.run starts holds only its stdio: not the API's sockets, which die with the host") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("exec.so")});
  Host host(plugins, dir.path() / "state");
  // A watch keeps a client connection open on the host while the program runs.
  Background watcher({"watch", "--json", "--api", host.api()});
  std::this_thread::sleep_for(200ms);
  const fs::path listing = dir.path() / "fds.txt";
  // The shell's own descriptors with their targets (the shell adds one of its own for the redirection).
  const std::string input = R"({"argv":["sh","-c","ls -l /proc/$$/fd > )" + listing.string() + R"("]})";
  const Result r = host.cli({"submit", "exec.run", "--input", input, "--wait"});
  INFO(r);
  REQUIRE(r.code == 0);
  std::ifstream in(listing);
  const std::string fds((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(fds);
  REQUIRE(fds.find(" 0 -> ") != std::string::npos);  // the listing is what it should be
  CHECK(fds.find("socket:") == std::string::npos);     // no listener, no client connection
  CHECK(fds.find("taskhost.db") == std::string::npos);
  CHECK(fds.find("taskhost.lock") == std::string::npos);
  host.signal(SIGKILL);
  watcher.finish(10s);
}

TEST_CASE("one host per state directory: a second is refused, naming the holder, and touches no task") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("timer.so")});
  const fs::path state = dir.path() / "state";
  Host host(plugins, state);
  start_long_timer(host, "t1");

  const Result second = run({"serve", "--plugins", plugins.string(), "--state", state.string(), "--api", "127.0.0.1:0"}, {}, 15s);
  INFO(second);
  CHECK(second.code == 1);
  CHECK(second.err.find("state directory " + state.string() + " is in use by another taskhost (pid " +
                        std::to_string(host.pid()) + ")") != std::string::npos);
  // The first host's task was not recovered under it, and its address file is still there.
  const auto s = wait_for_status(host, "t1", [](const json::object&) { return true; });
  CHECK(has_state(s, "RUNNING"));
  CHECK(s.at("attempt").to_number<int>() == 1);
  CHECK(fs::exists(state / "api.addr"));
}

TEST_CASE("a host whose API address is taken exits before it loads a plugin or recovery touches its tasks") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("timer.so")});
  const fs::path state = dir.path() / "state";
  {
    Host crashed(plugins, state);
    start_long_timer(crashed, "t1");
    crashed.signal(SIGKILL);
    REQUIRE(crashed.wait_exit(10s).has_value());
  }
  Host other(plugins, dir.path() / "other-state");
  const Result taken = run({"serve", "--plugins", plugins.string(), "--state", state.string(), "--api", other.api()}, {}, 15s);
  INFO(taken);
  CHECK(taken.code == 1);
  CHECK(taken.err.find("cannot listen on " + other.api()) != std::string::npos);
  CHECK(taken.err.find("re-attach") == std::string::npos);
  // Nor did it load a plugin first (a factory may connect or spawn): the host that got the address
  // logs its load, the one that did not has none.
  CHECK(other.log().find("plugins: loaded") != std::string::npos);
  CHECK(taken.err.find("plugins: loaded") == std::string::npos);

  // The first recovery is still owed: the task comes back as attempt 2, not 3.
  Host again(plugins, state);
  const auto s = wait_for_status(again, "t1", [](const json::object& o) { return has_state(o, "RUNNING"); });
  CHECK(has_state(s, "RUNNING"));
  CHECK(s.at("attempt").to_number<int>() == 2);
}

TEST_CASE("SIGTERM starts nothing that waited for a slot: it stays queued, and the next run starts it") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("cpp-interactive.so")});
  const fs::path cfg = dir.path() / "taskhost.toml";
  std::ofstream(cfg) << "[tasks]\ndrain_grace_ms = 10000\n\n[limits.kinds]\n\"interactive.count\" = 1\n";
  const fs::path state = dir.path() / "state";
  {
    Host host(plugins, state, {"--config", cfg.string()});
    // 3 s: still running after the CLI runs below, however slowly they go, and done within the grace.
    REQUIRE(host.cli({"submit", "interactive.count", "--id", "first", "--input", R"({"steps":20,"delay_ms":150})"}).code == 0);
    REQUIRE(host.cli({"submit", "interactive.count", "--id", "queued", "--input", R"({"steps":3,"delay_ms":10})"}).code == 0);
    wait_for_status(host, "first", [](const json::object& o) { return has_state(o, "RUNNING"); });
    REQUIRE(has_state(wait_for_status(host, "queued", [](const json::object&) { return true; }), "PENDING"));
    host.signal(SIGTERM);
    const auto status = host.wait_exit(15s);
    INFO(host.log());
    REQUIRE(status.has_value());
    CHECK(WIFEXITED(*status));
    // The running task finished within the grace; the queued one was neither started nor canceled.
    CHECK(host.log().find("'queued'") == std::string::npos);
  }
  Host again(plugins, state, {"--config", cfg.string()});
  CHECK(has_state(wait_for_status(again, "first", [](const json::object&) { return true; }), "SUCCEEDED"));
  const auto s = wait_for_status(again, "queued", [](const json::object& o) { return has_state(o, "SUCCEEDED"); });
  CHECK(has_state(s, "SUCCEEDED"));
  CHECK(s.at("attempt").to_number<int>() == 1);  // started fresh, not re-attached
  CHECK(again.log().find("recovery: starting queued task 'queued'") != std::string::npos);
}

TEST_CASE("a second SIGTERM during the drain exits at once; what ran resumes in the next run") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("timer.so")});
  const fs::path cfg = dir.path() / "taskhost.toml";
  std::ofstream(cfg) << "[tasks]\ndrain_grace_ms = 60000\n";  // the drain alone would take a minute
  const fs::path state = dir.path() / "state";
  {
    Host host(plugins, state, {"--config", cfg.string()});
    start_long_timer(host, "t1");
    host.signal(SIGTERM);
    // Two signals sent before the host took the first would merge into one.
    REQUIRE(taskhost::testing::eventually([&] { return host.log().find("SIGTERM: draining") != std::string::npos; }, 10s));
    host.signal(SIGTERM);
    const auto status = host.wait_exit(10s);
    INFO(host.log());
    REQUIRE(status.has_value());
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 128 + SIGTERM);
    CHECK(host.log().find("SIGTERM again: exiting now") != std::string::npos);
  }
  Host again(plugins, state);
  const auto s = wait_for_status(again, "t1", [](const json::object& o) { return has_state(o, "RUNNING"); });
  CHECK(has_state(s, "RUNNING"));
  CHECK(s.at("attempt").to_number<int>() == 2);  // re-attached, as after a crash
}

TEST_CASE("a host whose plugins directory serves nothing says so once at start") {
  TempDir dir;
  const fs::path plugins = dir.path() / "plugins";
  fs::create_directories(plugins);
  Host host(plugins, dir.path() / "state");
  CHECK(host.log().find("WARN  plugins: no plugin serves any kind: " + plugins.string() + " holds no loadable .so file") !=
        std::string::npos);
  CHECK(host.cli({"submit", "hello.greet", "--input", R"({"name":"x"})"}).code != 0);  // refused, as it said
}

TEST_CASE("a host whose log reader goes away keeps serving (SIGPIPE is not its end)") {
  // `taskhost serve ... | logger`, a log collector restarting, `| head`: writing the log into a pipe no
  // one reads any more used to kill the host with SIGPIPE, silently, tasks and all.
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  const fs::path state = dir.path() / "state";
  int out[2];
  REQUIRE(::pipe(out) == 0);
  const std::string bin = taskhost_bin().string();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::close(out[0]);
    ::execl(bin.c_str(), bin.c_str(), "serve", "--plugins", plugins.c_str(), "--state", state.c_str(), "--api",
            "127.0.0.1:0", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string addr;
  CHECK(taskhost::testing::eventually([&] {
    std::ifstream in(state / "api.addr");
    return in && std::getline(in, addr) && !addr.empty();
  }, 10s));
  ::close(out[0]);  // the reader goes away
  const Result reloaded = run({"reload", "--api", addr});  // the host logs the rescan: a write into the pipe
  INFO(reloaded);
  CHECK(reloaded.code == 0);
  const Result greeted = run({"submit", "hello.greet", "--input", R"({"name":"still here"})", "--wait", "--api", addr});
  INFO(greeted);
  CHECK(greeted.out == "Hello, still here!\n");
  int status = 0;
  CHECK(::waitpid(pid, &status, WNOHANG) == 0);  // still running
  ::kill(pid, SIGTERM);
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
}
