// isolation = "process" as an operator uses it: `taskhost serve` with the setting in its config file,
// the sample plugins each in a taskhost-plugin-child process, tasks driven by the CLI; a plugin that
// aborts, which fails its own task while the host and the other plugin go on; and a host killed with
// SIGKILL, whose plugin processes die with it.
#include "cli_harness.hpp"
#include "eventually.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/resource.h>

#include <fstream>
#include <thread>

using namespace taskhost::clitest;
using taskhost::testing::eventually;
namespace json = boost::json;

namespace {

fs::path write_config(const fs::path& dir, const std::string& text) {
  const fs::path file = dir / "taskhost.toml";
  std::ofstream(file) << text;
  return file;
}

int64_t pid_of(const json::object& plugin) { return plugin.at("pid").to_number<int64_t>(); }

// Gone: no such process, or a zombie nobody reaped yet (this test is not its parent).
bool process_gone(int64_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

// The plugin processes these tests crash write no core files into the build tree.
const bool no_core_files = [] {
  const rlimit none{0, 0};
  return ::setrlimit(RLIMIT_CORE, &none) == 0;
}();

}  // namespace

TEST_CASE("serve with [plugins] isolation = \"process\" runs the samples in plugin processes, steering included") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so"), built_plugin("cpp-interactive.so")});
  const fs::path config = write_config(
      dir.path(), "[plugins]\nisolation = \"process\"\n[plugins.files.\"Hello-C.so\"]\nisolation = \"in_process\"\n");
  Host host(plugins, dir.path() / "state", {"--config", config.string()});
  // A per-file setting whose name matches no file (here: the case) is a warning, not silence.
  CHECK(host.log().find("[plugins.files.\"Hello-C.so\"] names no file") != std::string::npos);

  for (const std::string file : {"hello-c.so", "cpp-interactive.so"}) {
    const json::object p = plugin_entry(host, file);
    CHECK(str(p, "isolation") == "process");
    CHECK(pid_of(p) > 0);
    CHECK(pid_of(p) != host.pid());
  }
  const Result table = host.cli({"plugins"});
  CHECK(table.out.find("RUNS IN") != std::string::npos);
  CHECK(table.out.find("pid ") != std::string::npos);

  const Result greet = host.cli({"submit", "hello.greet", "--input", R"({"name":"Ada"})", "--wait"});
  INFO(greet);
  CHECK(greet.code == 0);
  CHECK(greet.out == "Hello, Ada!\n");

  const std::string id = submit(host, {"interactive.count", "--input", R"({"steps":3,"delay_ms":20,"ask":true})"});
  const auto waiting = wait_for_status(host, id, [](const json::object& o) { return str(o, "state") == "WAITING_INPUT"; });
  REQUIRE(str(waiting, "state") == "WAITING_INPUT");
  const Result sent = host.cli({"send", id, "yes", "--reply-to", "confirm", "--json"});
  INFO(sent);
  CHECK(str(parse_json(sent.out).as_object(), "outcome") == "ACCEPTED");
  const auto done = wait_for_status(host, id, [](const json::object& o) { return str(o, "state") == "SUCCEEDED"; });
  CHECK(str(done, "state") == "SUCCEEDED");

  const std::string long_one = submit(host, {"interactive.count", "--input", R"({"steps":1000,"delay_ms":50})"});
  wait_for_status(host, long_one, [](const json::object& o) { return str(o, "state") == "RUNNING"; });
  CHECK(host.cli({"cancel", long_one}).code == 0);
  const auto canceled = wait_for_status(host, long_one, [](const json::object& o) { return str(o, "state") == "CANCELED"; });
  CHECK(str(canceled, "state") == "CANCELED");
}

TEST_CASE("a replaced isolated plugin drains in its own process, which `plugins` names until it ends") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("cpp-interactive.so")});
  const fs::path config = write_config(dir.path(), "[plugins]\nisolation = \"process\"\n");
  Host host(plugins, dir.path() / "state", {"--config", config.string(), "--no-watch"});
  const int64_t first = pid_of(plugin_entry(host, "cpp-interactive.so"));
  REQUIRE(first > 0);
  const std::string id = submit(host, {"interactive.count", "--input", R"({"steps":1000,"delay_ms":50})"});
  wait_for_status(host, id, [](const json::object& o) { return str(o, "state") == "RUNNING"; });

  // A new build (bytes appended: a new content hash) renamed into place, and a reload.
  fs::copy_file(built_plugin("cpp-interactive.so"), plugins / ".next.tmp");
  std::ofstream(plugins / ".next.tmp", std::ios::app | std::ios::binary) << std::string(64, '\0') << "build 2";
  fs::rename(plugins / ".next.tmp", plugins / "cpp-interactive.so");
  REQUIRE(host.cli({"reload"}).code == 0);
  const json::object p = plugin_entry(host, "cpp-interactive.so");
  CHECK(pid_of(p) > 0);
  CHECK(pid_of(p) != first);  // the new generation has a process of its own
  const auto& draining = p.at("draining").as_array();
  REQUIRE(draining.size() == 1);
  CHECK(pid_of(draining[0].as_object()) == first);  // the old one runs the task on, where it started
  const Result table = host.cli({"plugins"});
  INFO(table);
  CHECK(table.out.find("draining, 1 active task(s), in pid " + std::to_string(first)) != std::string::npos);

  CHECK(host.cli({"cancel", id}).code == 0);
  CHECK(eventually([&] { return plugin_entry(host, "cpp-interactive.so").at("draining").as_array().empty(); }, 30s));
  CHECK(eventually([&] { return process_gone(first); }, 30s));
}

TEST_CASE("a plugin that aborts fails its task; the host and an in-process plugin go on; the plugin comes back") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so"), fixture_plugin("scripted-v1.so")});
  const fs::path config = write_config(dir.path(), "[plugins.files.\"scripted-v1.so\"]\nisolation = \"process\"\n");
  Host host(plugins, dir.path() / "state", {"--config", config.string()});
  CHECK(str(plugin_entry(host, "hello-c.so"), "isolation") == "in_process");
  const int64_t first = pid_of(plugin_entry(host, "scripted-v1.so"));
  REQUIRE(first > 0);

  const std::string id = submit(host, {"test.hold"});
  wait_for_status(host, id, [](const json::object& o) { return str(o, "state") == "RUNNING"; });
  (void)host.cli({"send", id, "abort"});  // the plugin dies inside this delivery: its answer is a failure
  const auto failed =
      wait_for_status(host, id, [](const json::object& o) { return str(o, "state") == "FAILED"; }, 30s);
  REQUIRE(str(failed, "state") == "FAILED");
  const std::string status_text = host.cli({"status", id}).out;
  CHECK_MESSAGE(status_text.find("killed by signal 6") != std::string::npos, status_text);

  CHECK(host.wait_exit(0ms) == std::nullopt);  // the host is still running
  const Result greet = host.cli({"submit", "hello.greet", "--input", R"({"name":"Bo"})", "--wait"});
  CHECK(greet.out == "Hello, Bo!\n");
  CHECK(eventually([&] {
    const json::object p = plugin_entry(host, "scripted-v1.so");
    return pid_of(p) > 0 && pid_of(p) != first && p.at("process_restarts").to_number<int64_t>() == 1;
  }, 30s));
  const Result instant = host.cli({"submit", "test.instant", "--input", "5", "--wait"});
  INFO(instant);
  CHECK(instant.code == 0);
  CHECK(host.log().find("killed by signal 6") != std::string::npos);
}

TEST_CASE("an isolated plugin's call that lets an exception out fails its task as in-process; its process goes on") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {fixture_plugin("scripted-v1.so")});
  const fs::path config = write_config(dir.path(), "[plugins]\nisolation = \"process\"\n");
  Host host(plugins, dir.path() / "state", {"--config", config.string()});
  const int64_t pid = pid_of(plugin_entry(host, "scripted-v1.so"));
  REQUIRE(pid > 0);
  const std::string thrower = submit(host, {"test.hold"});
  const std::string bystander = submit(host, {"test.hold"});
  for (const auto& id : {thrower, bystander}) {
    wait_for_status(host, id, [](const json::object& o) { return str(o, "state") == "RUNNING"; });
  }
  (void)host.cli({"send", thrower, "throw"});  // the fixture throws out of its on_deliver, against plugin.h
  const auto failed = wait_for_status(host, thrower, [](const json::object& o) { return str(o, "state") == "FAILED"; });
  REQUIRE(str(failed, "state") == "FAILED");
  const auto& error = obj(obj(failed, "completion"), "error");
  CHECK(str(error, "code") == "WORKER_ERROR");
  CHECK(str(error, "kind") == "exception");  // what an in-process plugin's throw gives (tests/tasks/router_test.cpp)
  CHECK(str(error, "message").find("threw an exception (thrown by the fixture)") != std::string::npos);
  // The process was not aborted: same pid, no restart, and the other task runs on in it.
  const json::object p = plugin_entry(host, "scripted-v1.so");
  CHECK(pid_of(p) == pid);
  CHECK(p.at("process_restarts").to_number<int64_t>() == 0);
  CHECK(str(parse_json(host.cli({"status", bystander, "--json"}).out).as_object(), "state") == "RUNNING");
  CHECK(host.cli({"send", bystander, "finish"}).code == 0);
  const auto finished = wait_for_status(host, bystander, [](const json::object& o) { return str(o, "state") == "SUCCEEDED"; });
  CHECK(str(finished, "state") == "SUCCEEDED");
}

TEST_CASE("a host killed with SIGKILL takes its plugin processes with it") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  const fs::path config = write_config(dir.path(), "[plugins]\nisolation = \"process\"\n");
  Host host(plugins, dir.path() / "state", {"--config", config.string()});
  const int64_t pid = pid_of(plugin_entry(host, "hello-c.so"));
  REQUIRE(pid > 0);
  CHECK_FALSE(process_gone(pid));
  host.signal(SIGKILL);
  CHECK(host.wait_exit(10s).has_value());
  CHECK(eventually([&] { return process_gone(pid); }));
}

TEST_CASE("a plugin whose factory rewrites its descriptor is served as checked, in-process and isolated") {
  // QA: a factory renamed its kind to bytes that are not UTF-8 after the check; /v1/plugins and
  // `taskhost plugins` then broke for every plugin, and a factory setting on_start to NULL crashed the host.
  for (const std::string isolation : {"in_process", "process"}) {
    CAPTURE(isolation);
    TempDir dir;
    const fs::path plugins =
        make_plugins_dir(dir.path(), {built_plugin("hello-c.so"), fixture_plugin("loader-mutating.so")});
    const fs::path config =
        write_config(dir.path(), "[plugins.files.\"loader-mutating.so\"]\nisolation = \"" + isolation + "\"\n");
    Host host(plugins, dir.path() / "state", {"--config", config.string()});

    const json::object p = plugin_entry(host, "loader-mutating.so");  // the listing parses
    CHECK(str(p, "isolation") == isolation);
    CHECK(str(p, "last_error") == "");
    CHECK(json::serialize(p.at("kinds")) == R"(["fixture.mutating.first","fixture.mutating.second"])");
    const Result table = host.cli({"plugins"});
    INFO(table);
    CHECK(table.code == 0);
    CHECK(table.out.find("fixture.mutating.first") != std::string::npos);

    // Through the functions that were checked: on_start, not the NULL or the swapped one.
    for (const std::string kind : {"fixture.mutating.first", "fixture.mutating.second"}) {
      const Result run = host.cli({"submit", kind, "--wait"});
      INFO(run);
      CHECK(run.code == 0);
      CHECK(run.out.find("checked start") != std::string::npos);
    }
    const Result greet = host.cli({"submit", "hello.greet", "--input", R"({"name":"Ada"})", "--wait"});
    CHECK(greet.out == "Hello, Ada!\n");
    CHECK(host.wait_exit(0ms) == std::nullopt);  // still running
  }
}
