// timer.wait through the test kit: the built timer.so dlopen'ed and driven call by call, for detach (a
// host does it only on hot reload) and for the exact sink calls of one timer.
#include <doctest/doctest.h>

#include <taskhost/testkit.hpp>

#include "plugin_test_support.hpp"

using taskhost::testkit::EventType;
using taskhost::testkit::PluginUnderTest;
using taskhost::testkit::TaskHandle;
using taskhost::testkit::TaskView;
using namespace plugin_tests;

namespace {

constexpr char kTimer[] = "timer.wait";
const std::string kTimerSo = std::string(TASKHOST_PLUGIN_DIR) + "/timer.so";

}  // namespace

TEST_CASE("detach stops the timer with a final checkpoint and no later sink call; re-attach ends at the old deadline") {
  PluginUnderTest plugin(kTimerSo);
  const auto t0 = std::chrono::steady_clock::now();
  const TaskHandle first = plugin.start(kTimer, R"({"ms":600,"steps":6})");
  REQUIRE(first.start_status.ok());
  CHECK(plugin.can_reattach(first));
  REQUIRE(plugin.wait_until(first, [](const TaskView& v) { return !v.of(EventType::progress).empty(); }));

  REQUIRE(plugin.detach(first).ok());
  const TaskView detached = plugin.view(first);
  REQUIRE_FALSE(detached.events.empty());
  CHECK(detached.events.back().type == EventType::checkpoint);  // detach's own checkpoint is the last word
  CHECK_FALSE(detached.terminal());
  std::this_thread::sleep_for(250ms);  // steps were due meanwhile: none may reach the detached attempt
  CHECK(plugin.view(first).events.size() == detached.events.size());

  const TaskHandle second = plugin.reattach(first);
  REQUIRE(second.start_status.ok());
  const auto result = plugin.wait_terminal(second, 5s);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(contains(result->output, "\"resumed\":true"));
  CHECK(since(t0) >= 600ms);
  CHECK(since(t0) < 1500ms);
  const auto progress = plugin.view(second).of(EventType::progress);
  REQUIRE_FALSE(progress.empty());
  CHECK(progress.front().current > 1);  // resumed where the schedule stood, not from step 1
  CHECK(progress.back().current == 6);
  CHECK(plugin.view(second).rejected().empty());
  CHECK(plugin.host().violations().empty());
}

TEST_CASE("a zero-length timer succeeds at once with its one progress step") {
  PluginUnderTest plugin(kTimerSo);
  const TaskHandle task = plugin.start(kTimer, R"({"ms":0})");
  const auto result = plugin.wait_terminal(task, 5s);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(contains(result->output, "\"resumed\":false"));
  const auto progress = plugin.view(task).of(EventType::progress);
  REQUIRE(progress.size() == 1);
  CHECK(progress[0].current == 1);
  CHECK(progress[0].total == 1);
}

TEST_CASE("cancel ends a timer at once and unschedules it: no call follows, even before the release") {
  PluginUnderTest plugin(kTimerSo);
  const TaskHandle task = plugin.start(kTimer, R"({"ms":200,"steps":100})");
  REQUIRE(plugin.wait_until(task, [](const TaskView& v) { return v.of(EventType::progress).size() >= 3; }));
  REQUIRE(plugin.cancel(task).ok());
  CHECK(plugin.state(task) == TH_STATE_CANCELED);  // ended inside cancel(), not later
  // Not released yet (a host releases at once, which would hide a timer left scheduled): its old
  // deadline passes while the attempt is still the executor's.
  std::this_thread::sleep_for(250ms);
  // At most the one progress call that was in flight when cancel came; a timer still scheduled would
  // have been refused ~90 more.
  const auto late = plugin.view(task).rejected();
  CHECK(late.size() <= 1);
  for (const auto& e : late) CHECK(e.type == EventType::progress);
  CHECK(plugin.view(task).of(EventType::complete).size() == 1);
  plugin.release(task);
}
