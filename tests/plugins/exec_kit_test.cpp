// exec.run through the test kit: the built exec.so dlopen'ed and driven call by call, for what a host
// only does at its edges (release while running) and for the edges of a program's pipes.
#include <doctest/doctest.h>

#include <taskhost/testkit.hpp>

#include "plugin_test_support.hpp"

using taskhost::testkit::EventType;
using taskhost::testkit::PluginUnderTest;
using taskhost::testkit::TaskHandle;
using taskhost::testkit::TaskView;
using namespace plugin_tests;

namespace {

constexpr char kExec[] = "exec.run";
const std::string kExecSo = std::string(TASKHOST_PLUGIN_DIR) + "/exec.so";

// The pid from the "started" post ({"pid":N}).
pid_t started_pid(PluginUnderTest& plugin, const TaskHandle& task) {
  REQUIRE(plugin.wait_until(task, [](const TaskView& v) { return !v.of(EventType::post).empty(); }));
  const std::string data = plugin.view(task).of(EventType::post).front().data;
  REQUIRE(data.rfind("{\"pid\":", 0) == 0);
  return static_cast<pid_t>(std::stol(data.substr(7)));
}

std::string stdout_of(const TaskView& v) {
  std::string text;
  for (const auto& e : v.of(EventType::output)) {
    if (e.stream == "stdout") text += e.data;
  }
  return text;
}

}  // namespace

TEST_CASE("release while the program runs kills it and joins before returning, with no late sink call") {
  PluginUnderTest plugin(kExecSo);
  const TaskHandle task = plugin.start(kExec, R"({"argv":["sleep","30"]})");
  REQUIRE(task.start_status.ok());
  const pid_t pid = started_pid(plugin, task);
  REQUIRE_FALSE(process_gone(pid));
  plugin.release(task);  // what the host does past its cancel deadline, or at shutdown
  CHECK(process_gone(pid));
  const TaskView v = plugin.view(task);
  CHECK_FALSE(v.terminal());   // released, not ended by the plugin
  CHECK(v.rejected().empty()); // the I/O thread made no call after the release
  CHECK(plugin.host().violations().empty());
}

TEST_CASE("a program that exits while a grandchild holds its output open ends promptly; the grandchild is killed") {
  PluginUnderTest plugin(kExecSo);
  const auto t0 = std::chrono::steady_clock::now();
  const TaskHandle task = plugin.start(kExec, R"({"argv":["sh","-c","sleep 30 & echo $!"]})");
  REQUIRE(task.start_status.ok());
  const auto result = plugin.wait_terminal(task, 5s);
  REQUIRE(result);
  CHECK(since(t0) < 2s);  // not 30 s: the sleep holding stdout died with the shell's exit
  CHECK(result->state == TH_STATE_SUCCEEDED);
  const pid_t grandchild = static_cast<pid_t>(std::stol(stdout_of(plugin.view(task))));
  CHECK(eventually([&] { return process_dead(grandchild); }, 2s));
}

TEST_CASE("once stdin is closed, steering is refused with the reason") {
  PluginUnderTest plugin(kExecSo);
  const TaskHandle task = plugin.start(kExec, R"({"argv":["sleep","30"],"stdin":""})");
  REQUIRE(task.start_status.ok());
  const auto refused = plugin.deliver(task, "more\n");
  CHECK(refused.code == TH_FAILED);
  CHECK(contains(refused.message, "closed after it"));
  REQUIRE(plugin.cancel(task).ok());
  const auto result = plugin.wait_terminal(task, 5s);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_CANCELED);
}

TEST_CASE("writing to a program that closed its stdin fails the steering, not the host (no SIGPIPE)") {
  PluginUnderTest plugin(kExecSo);
  // The shell closes its stdin and then becomes sleep, so nothing reads the pipe any more.
  const TaskHandle task = plugin.start(kExec, R"({"argv":["sh","-c","exec 0<&-; exec sleep 30"]})");
  REQUIRE(task.start_status.ok());
  started_pid(plugin, task);
  taskhost::Status last;
  // Writes land in the pipe until the reader is gone; the first write after that gets EPIPE (which would
  // be a SIGPIPE killing this whole test process if the plugin let it through), and then steering fails.
  CHECK(eventually(
      [&] {
        last = plugin.deliver(task, "x");
        return !last.ok();
      },
      5s));
  CHECK(contains(last.message, "the program closed its stdin"));
  REQUIRE(plugin.cancel(task).ok());
  const auto result = plugin.wait_terminal(task, 5s);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_CANCELED);
}

TEST_CASE("exec.run declares steering but no re-attach group") {
  PluginUnderTest plugin(kExecSo);
  // Function pointers compared outside the macro: doctest cannot print them.
  const bool no_reattach = plugin.kind(kExec).on_can_reattach == nullptr && plugin.kind(kExec).on_detach == nullptr;
  CHECK(no_reattach);
  const bool takes_steering = plugin.kind(kExec).on_deliver != nullptr;
  CHECK(takes_steering);
}
