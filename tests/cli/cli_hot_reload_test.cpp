// Hot reload from the operator's side, through the real binary: `taskhost serve` watches its plugins
// directory by default (a plain `cp` serves, no SIGHUP), --no-watch leaves it to `taskhost reload`,
// `taskhost reload --migrate` and POST /v1/reload?migrate=true go through Host::reload (counted in
// /metrics), and a bad new version shows its error in `taskhost plugins`, the log and /metrics while the
// old version keeps serving.
#include "cli_harness.hpp"
#include "host_metrics.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <thread>

using namespace taskhost::clitest;
namespace json = boost::json;

namespace {

// `plugins --json` until `pred` holds for the entry of `file_name` (null when absent), or 10 s.
bool wait_plugin(const Host& host, const std::string& file_name,
                 const std::function<bool(const json::object*)>& pred) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    const Result r = host.cli({"plugins", "--json"});
    REQUIRE(r.code == 0);
    const auto root = parse_json(r.out).as_object();
    if (pred(find_plugin(root, file_name))) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// A number member: protobuf's JSON mapping writes 64-bit integers (the generation) as strings.
int64_t number(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  if (!v) return 0;
  if (v->is_string()) return std::stoll(std::string(v->as_string()));
  return v->to_number<int64_t>();
}

std::string file_label(const fs::path& file) { return "file=\"" + file.string() + "\""; }

}  // namespace

TEST_CASE("serve watches its plugins directory by default: a plain cp serves without SIGHUP") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  Host host(plugins, dir.path() / "state");  // no config file: every default
  CHECK(host.cli({"submit", "interactive.echo", "--input", "{}"}).code == 1);  // not there yet

  fs::copy_file(built_plugin("cpp-interactive.so"), plugins / "cpp-interactive.so");  // cp, nothing else
  CHECK(wait_plugin(host, "cpp-interactive.so", [](const json::object* p) { return p && str(*p, "state") == "serving"; }));
  const Result echo = host.cli({"submit", "interactive.echo", "--input", R"({"x":1})", "--wait", "--json"});
  INFO(echo);
  CHECK(echo.code == 0);
  const Result table = host.cli({"plugins"});
  CHECK(table.out.find("cpp-interactive.so") != std::string::npos);
  CHECK(table.out.find("interactive.echo") != std::string::npos);

  const std::string m = client_of(host).metrics_text();
  INFO(m);
  CHECK(sample(m, "taskhost_plugin_generations_loaded_total", {file_label(plugins / "cpp-interactive.so")}) == "1");
  CHECK(sample(m, "taskhost_plugin_reloads_total") == "0");  // the watcher did it, not an operator
  CHECK(sample(m, "taskhost_plugin_watcher_watching") == "1");
  CHECK(host.log().find("reload: " + (plugins / "cpp-interactive.so").string() + " serves") != std::string::npos);
}

TEST_CASE("--no-watch leaves it to taskhost reload; reload --migrate and POST /v1/reload?migrate=true are Host::reload") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  Host host(plugins, dir.path() / "state", {"--no-watch"});
  auto client = client_of(host);
  CHECK(sample(client.metrics_text(), "taskhost_plugin_watcher_watching").empty());  // no watcher at all

  fs::copy_file(built_plugin("cpp-interactive.so"), plugins / "cpp-interactive.so");
  std::this_thread::sleep_for(600ms);  // well past the watcher's settle time, had there been one
  CHECK(wait_plugin(host, "cpp-interactive.so", [](const json::object* p) { return p == nullptr; }));

  const Result r = host.cli({"reload", "--migrate", "--json"});
  INFO(r);
  REQUIRE(r.code == 0);
  const auto report = parse_json(r.out).as_object();
  REQUIRE(report.at("loaded").as_array().size() == 1);
  CHECK(report.at("migrate").as_bool());
  CHECK(host.cli({"submit", "interactive.echo", "--input", "{}", "--wait"}).code == 0);
  CHECK(sample(client.metrics_text(), "taskhost_plugin_reloads_total") == "1");

  auto res = client.request("POST", "/v1/reload?migrate=true");
  CHECK(res.status == 200);
  CHECK(parse_json(res.body).as_object().at("migrate").as_bool());
  res = client.request("POST", "/v1/reload", R"({"migrate":true})");
  CHECK(res.status == 200);
  CHECK(parse_json(res.body).as_object().at("migrate").as_bool());
  CHECK(sample(client.metrics_text(), "taskhost_plugin_reloads_total") == "3");

  res = client.request("POST", "/v1/reload?migrate=maybe");
  CHECK(res.status == 400);
  CHECK(str(parse_json(res.body).as_object(), "error").find("'migrate'") != std::string::npos);
  res = client.request("POST", "/v1/reload?migrat=true");
  CHECK(res.status == 400);
  CHECK(str(parse_json(res.body).as_object(), "error").find("'migrat'") != std::string::npos);
  res = client.request("POST", "/v1/reload", R"({"migrate":"yes"})");
  CHECK(res.status == 400);
  CHECK(sample(client.metrics_text(), "taskhost_plugin_reloads_total") == "3");  // refused requests did not reload
  CHECK(host.log().find("api: reload (migrate)") != std::string::npos);
}

TEST_CASE("a bad new version keeps the old one serving; its error is in plugins, the log and /metrics") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  const fs::path hello = plugins / "hello-c.so";
  Host host(plugins, dir.path() / "state");
  auto client = client_of(host);
  std::string m = client.metrics_text();
  const std::string generation = sample(m, "taskhost_plugin_generation", {file_label(hello), "plugin=\"hello-c\""});
  REQUIRE_FALSE(generation.empty());
  CHECK(sample(m, "taskhost_plugin_draining_generations", {file_label(hello)}) == "0");
  CHECK(sample(m, "taskhost_plugin_generation_active_tasks", {file_label(hello), "role=\"current\""}) == "0");
  CHECK(sample(m, "taskhost_plugin_scans_total") == "1");  // the startup scan
  CHECK(sample(m, "taskhost_plugin_load_errors") == "0");

  {  // a new version that is not a plugin at all, renamed into place as a deploy would
    std::ofstream(plugins / ".hello-c.so.tmp") << "\x7f" "ELF and then nothing useful";
  }
  fs::rename(plugins / ".hello-c.so.tmp", hello);
  CHECK(wait_plugin(host, "hello-c.so", [](const json::object* p) { return p && !str(*p, "last_error").empty(); }));
  const auto root = parse_json(host.cli({"plugins", "--json"}).out).as_object();
  const auto* entry = find_plugin(root, "hello-c.so");
  REQUIRE(entry != nullptr);
  CHECK(str(*entry, "state") == "serving");  // the old generation still does
  CHECK(host.cli({"submit", "hello.greet", "--input", R"({"name":"Old"})", "--wait"}).out == "Hello, Old!\n");

  m = client.metrics_text();
  INFO(m);
  CHECK(sample(m, "taskhost_plugin_load_errors") == "1");
  CHECK(sample(m, "taskhost_plugin_load_error", {file_label(hello), "state=\"serving\"", "error=\""}) == "1");
  CHECK(sample(m, "taskhost_plugin_load_failures_total", {file_label(hello)}) == "1");
  CHECK(sample(m, "taskhost_plugin_generation", {file_label(hello)}) == generation);
  CHECK(std::stoi(sample(m, "taskhost_plugin_scans_total")) >= 2);
  CHECK(host.log().find("reload: " + hello.string() + ": ") != std::string::npos);  // the watcher logged why

  // An operator's reload retries the failed file: one more failure, counted.
  const Result again = host.cli({"reload"});
  INFO(again);
  CHECK(again.code == 1);  // scripts see that a file failed
  CHECK(again.out.find("failed   " + hello.string() + ": ") != std::string::npos);
  m = client.metrics_text();
  CHECK(sample(m, "taskhost_plugin_load_failures_total", {file_label(hello)}) == "2");
  CHECK(sample(m, "taskhost_plugin_reloads_total") == "1");

  // The good build again: a new generation, and the error is gone.
  fs::copy_file(built_plugin("hello-c.so"), plugins / ".hello-c.so.tmp");
  fs::rename(plugins / ".hello-c.so.tmp", hello);
  CHECK(wait_plugin(host, "hello-c.so", [](const json::object* p) { return p && str(*p, "last_error").empty(); }));
  m = client.metrics_text();
  CHECK(sample(m, "taskhost_plugin_load_errors") == "0");
  CHECK(sample(m, "taskhost_plugin_load_error", {file_label(hello)}).empty());
}

TEST_CASE("taskhost reload --migrate moves a re-attachable running task to the new generation; reload alone does not") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("cpp-interactive.so")});
  Host host(plugins, dir.path() / "state", {"--no-watch"});  // every switch here is an operator's
  const Result submitted =
      host.cli({"submit", "interactive.count", "--input", R"({"steps":400,"delay_ms":50})", "--id", "long-1"});
  REQUIRE(submitted.code == 0);
  const auto running = wait_for_status(host, "long-1", [](const json::object& s) { return str(s, "state") == "RUNNING"; });
  REQUIRE(str(running, "state") == "RUNNING");
  const int64_t first = number(running, "generation");

  // A new build of the same plugin: the same library with bytes appended (the loader ignores them, the
  // content hash does not), renamed into place.
  fs::copy_file(built_plugin("cpp-interactive.so"), plugins / ".cpp-interactive.so.tmp");
  std::ofstream(plugins / ".cpp-interactive.so.tmp", std::ios::app | std::ios::binary) << std::string(64, '\0') << "build 2";
  fs::rename(plugins / ".cpp-interactive.so.tmp", plugins / "cpp-interactive.so");

  const Result plain = host.cli({"reload", "--json"});
  INFO(plain);
  REQUIRE(parse_json(plain.out).as_object().at("loaded").as_array().size() == 1);
  std::this_thread::sleep_for(300ms);
  auto status = parse_json(host.cli({"status", "long-1", "--json"}).out).as_object();
  CHECK(number(status, "generation") == first);  // still on the generation that started it
  CHECK(wait_plugin(host, "cpp-interactive.so", [](const json::object* p) { return p && p->at("draining").as_array().size() == 1; }));

  const Result migrate = host.cli({"reload", "--migrate"});
  INFO(migrate);
  CHECK(migrate.code == 0);
  CHECK(migrate.out == "moved    1 running task(s) to the current generations\n");  // nothing new on disk
  status = wait_for_status(host, "long-1", [&](const json::object& s) {
    return number(s, "generation") != first && str(s, "state") == "RUNNING";
  });
  CHECK(number(status, "generation") > first);
  CHECK(number(status, "attempt") == 2);  // re-attached from its checkpoint
  const std::string m = client_of(host).metrics_text();
  CHECK(sample(m, "taskhost_plugin_tasks_migrated_total") == "1");
  CHECK(sample(m, "taskhost_plugin_reloads_total") == "2");
  CHECK(host.cli({"cancel", "long-1"}).code == 0);
}

TEST_CASE("reload --migrate counts the tasks that moved, not those its plugin kept (can_reattach said no)") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {});
  fs::copy_file(fixture_plugin("scripted-v1.so"), plugins / "scripted.so");
  Host host(plugins, dir.path() / "state", {"--no-watch"});
  const std::string movable = submit(host, {"test.hold"});
  const std::string kept = submit(host, {"test.hold", "--input", R"("no-reattach")"});
  for (const auto& id : {movable, kept}) {
    wait_for_status(host, id, [](const json::object& s) { return str(s, "state") == "RUNNING"; });
  }
  fs::copy_file(fixture_plugin("scripted-v2.so"), plugins / ".scripted.so.tmp");
  fs::rename(plugins / ".scripted.so.tmp", plugins / "scripted.so");
  const Result migrate = host.cli({"reload", "--migrate"});
  INFO(migrate);
  CHECK(migrate.code == 0);
  CHECK(migrate.out.find("moved    1 running task(s) to the current generations\n") != std::string::npos);  // was: 2
  const auto moved = wait_for_status(host, movable, [](const json::object& s) { return number(s, "attempt") == 2; });
  CHECK(number(moved, "attempt") == 2);
  CHECK(number(parse_json(host.cli({"status", kept, "--json"}).out).as_object(), "attempt") == 1);
  CHECK(sample(client_of(host).metrics_text(), "taskhost_plugin_tasks_migrated_total") == "1");
  for (const auto& id : {movable, kept}) CHECK(host.cli({"cancel", id}).code == 0);
}
