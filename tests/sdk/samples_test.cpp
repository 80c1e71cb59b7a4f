// The built sample plugins (build/plugins/*.so) as files: loaded the way the host loads them (manifest
// read from the file first, then dlopen, then the descriptor checked against it), driven through the
// test kit, and checked to export nothing but taskhost_plugin_entry.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <taskhost/testkit.hpp>
#include <vector>

#include "run_command.hpp"

using taskhost::testkit::EventType;
using taskhost::testkit::PluginUnderTest;
using taskhost::testkit::TaskHandle;

namespace {

constexpr auto kWait = std::chrono::seconds(10);

std::string plugin_file(const std::string& name) { return std::string(TASKHOST_PLUGIN_DIR) + "/" + name + ".so"; }

std::vector<std::string> sample_files() {
  std::vector<std::string> files = {plugin_file("hello-c"), plugin_file("cpp-interactive")};
#if TASKHOST_HAVE_RUST
  files.push_back(plugin_file("rust-hello"));
#endif
  return files;
}

// Whether `file` is mapped into this process now.
bool mapped(const std::string& file) {
  std::ifstream maps("/proc/self/maps");
  std::stringstream text;
  text << maps.rdbuf();
  return text.str().find(file) != std::string::npos;
}

}  // namespace

TEST_CASE("every sample unloads for real: after dlclose nothing of it stays mapped (hot reload relies on it)") {
  for (const std::string& file : sample_files()) {
    CAPTURE(file);
    {
      PluginUnderTest plugin(file);
      const auto task = plugin.start(plugin.kinds().front(), R"({"name":"x","numbers":[1]})");
      CHECK(plugin.wait_terminal(task, kWait));
      CHECK(mapped(file));
    }
    CHECK_FALSE(mapped(file));
  }
}

TEST_CASE("every sample exports exactly one dynamic symbol: taskhost_plugin_entry") {
  for (const std::string& file : sample_files()) {
    CAPTURE(file);
    const std::vector<std::string> expected = {"taskhost_plugin_entry"};
    CHECK(sdk_test::defined_dynamic_symbols(file) == expected);
  }
}

TEST_CASE("hello-c was compiled by clang as C, not by the host's compiler") {
  const sdk_test::CommandResult comment = sdk_test::run("readelf -p .comment '" + plugin_file("hello-c") + "'");
  REQUIRE(comment.ok());
  CHECK(comment.output.find("clang") != std::string::npos);
}

TEST_CASE("hello-c: greet and sum, and bad input fails as invalid input") {
  PluginUnderTest plugin(plugin_file("hello-c"));
  CHECK(std::string(plugin.descriptor().name) == "hello-c");
  CHECK(std::string(plugin.kind("hello.greet").description) == "Greets {\"name\": ...} by name");

  auto greet = plugin.start("hello.greet", R"({"name": "Ada"})");
  auto result = plugin.wait_terminal(greet, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(result->output == R"("Hello, Ada!")");

  auto quoted = plugin.start("hello.greet", R"({"name":"A \"quoted\" name"})");
  result = plugin.wait_terminal(quoted, kWait);
  REQUIRE(result);
  CHECK(result->output == R"("Hello, A \"quoted\" name!")");

  auto sum = plugin.start("hello.sum", R"({"numbers": [1, 2, 3.5]})");
  result = plugin.wait_terminal(sum, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(result->output == "6.5");
  // Past the largest double: no JSON number says it, so the input is refused (was "inf", not JSON).
  auto huge = plugin.start("hello.sum", R"({"numbers": [1e308, 1e308]})");
  result = plugin.wait_terminal(huge, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_FAILED);
  CHECK(result->error_code == TH_ERROR_INVALID_INPUT);

  auto bad = plugin.start("hello.greet", R"({"who":"Ada"})");
  result = plugin.wait_terminal(bad, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_FAILED);
  CHECK(result->error_code == TH_ERROR_INVALID_INPUT);

  CHECK(plugin.deliver(greet, "hi").code == TH_TASK_ENDED);
}

TEST_CASE("cpp-interactive.so: the built file behaves like the linked-in sources") {
  PluginUnderTest plugin(plugin_file("cpp-interactive"));
  const TaskHandle task = plugin.start("interactive.count", R"({"steps":3,"delay_ms":1,"ask":true})");
  REQUIRE(plugin.wait_state(task, TH_STATE_WAITING_INPUT, kWait));
  CHECK(plugin.deliver(task, "ping").ok());
  CHECK(plugin.answer(task, "confirm", "no").ok());
  const auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(result->output ==
        R"({"plugin":"cpp-interactive","version":"1.0.0","counted":3,"resumed_from":0,"answer":"no"})");
  CHECK(plugin.view(task).of(EventType::post).at(0).text == "echo: ping");
}

#if TASKHOST_HAVE_RUST
TEST_CASE("rust-hello: greets from Rust; malformed input is refused at start") {
  PluginUnderTest plugin(plugin_file("rust-hello"));
  CHECK(std::string(plugin.descriptor().version) == "1.0.0");
  auto task = plugin.start("rust.hello", R"({"name":"Ada"})");
  auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(result->output == R"("Hello from Rust, Ada!")");

  auto bad = plugin.start("rust.hello", "[1]");
  CHECK(bad.start_status.code == TH_INVALID_ARGUMENT);
  CHECK(bad.start_status.message == "input must be a JSON object");
}
#endif
