// The cpp-interactive sample (samples/cpp-interactive) through the test kit, with the sample's sources
// linked into this test: every call goes through the plugin's C entry point, as from the host.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <taskhost/testkit.hpp>
#include <thread>
#include <vector>

using taskhost::testkit::EventType;
using taskhost::testkit::PluginUnderTest;
using taskhost::testkit::StartOptions;
using taskhost::testkit::TaskHandle;
using taskhost::testkit::TaskView;

namespace {

constexpr auto kWait = std::chrono::seconds(10);
constexpr char kCount[] = "interactive.count";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("count: one progress event and one checkpoint per step, then success naming the plugin version") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle task = plugin.start(kCount, R"({"steps":4,"delay_ms":1})");
  REQUIRE(task.start_status.ok());
  const auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(result->output ==
        R"({"plugin":"cpp-interactive","version":"1.0.0","counted":4,"resumed_from":0,"answer":null})");

  const TaskView v = plugin.view(task);
  const auto progress = v.of(EventType::progress);
  REQUIRE(progress.size() == 4);
  const auto checkpoints = v.of(EventType::checkpoint);
  REQUIRE(checkpoints.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(progress[i].current == static_cast<double>(i + 1));
    CHECK(progress[i].total == 4.0);
    CHECK(progress[i].unit == "steps");
    CHECK(checkpoints[i].data == std::to_string(i + 1));
  }
  CHECK(v.rejected().empty());
}

TEST_CASE("count: asking for input parks the task in waiting_input until the answer, then it runs on") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  // 50 ms per step: the host's "answered" transition lands long before the last step ends the task.
  const TaskHandle task = plugin.start(kCount, R"({"steps":3,"delay_ms":50,"ask":true,"ask_at":2})");
  REQUIRE(plugin.wait_state(task, TH_STATE_WAITING_INPUT, kWait));
  const TaskView asked = plugin.view(task);
  CHECK(asked.pending_request == "confirm");
  const auto requests = asked.of(EventType::input_request);
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].request_id == "confirm");
  CHECK(contains(requests[0].schema, "\"enum\""));
  CHECK(asked.of(EventType::progress).size() == 2);

  // It really waits: nothing moves while the question is open.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(plugin.state(task) == TH_STATE_WAITING_INPUT);
  CHECK(plugin.view(task).of(EventType::progress).size() == 2);

  // An answer to a request the task is not waiting for is refused without reaching the plugin.
  CHECK(plugin.answer(task, "other", "yes").code == TH_INVALID_ARGUMENT);
  CHECK(plugin.answer(task, "confirm", "yes").ok());

  const auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(contains(result->output, R"("counted":3)"));
  CHECK(contains(result->output, R"("answer":"yes")"));

  // The states went running -> waiting_input -> running (answered) -> succeeded.
  std::vector<th_task_state> states;
  for (const auto& e : plugin.view(task).events) {
    if (e.accepted() && (e.type == EventType::state || e.type == EventType::input_request)) {
      states.push_back(e.type == EventType::input_request ? TH_STATE_WAITING_INPUT : e.state);
    }
  }
  const std::vector<th_task_state> expected = {TH_STATE_RUNNING, TH_STATE_RUNNING, TH_STATE_WAITING_INPUT,
                                               TH_STATE_RUNNING};
  CHECK(states == expected);  // host "started", plugin "counting", the question, host "answered"
}

TEST_CASE("count: steering text is echoed back and 'faster' halves the step delay") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle task = plugin.start(kCount, R"({"steps":2,"delay_ms":40,"ask":true,"ask_at":1})");
  REQUIRE(plugin.wait_state(task, TH_STATE_WAITING_INPUT, kWait));  // parked: steering arrives mid-run
  CHECK(plugin.deliver(task, "hello there").ok());
  CHECK(plugin.deliver(task, "faster").ok());
  REQUIRE(plugin.wait_until(
      task, [](const TaskView& v) { return v.of(EventType::post).size() == 2; }, kWait));
  const auto posts = plugin.view(task).of(EventType::post);
  CHECK(posts[0].text == "echo: hello there");
  CHECK(posts[1].text == "faster: step delay is now 20 ms");

  CHECK(plugin.answer(task, "confirm", "yes").ok());
  const auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
}

TEST_CASE("count: cancel ends a long count promptly, as canceled") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle task = plugin.start(kCount, R"({"steps":1000,"delay_ms":1000})");  // ~17 minutes
  REQUIRE(task.start_status.ok());
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(plugin.cancel(task).ok());
  const auto result = plugin.wait_terminal(task, std::chrono::seconds(5));
  REQUIRE(result);
  CHECK(result->state == TH_STATE_CANCELED);
  CHECK(result->message == "canceled after step 0");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(900));  // not after a step
}

TEST_CASE("count: cancel while waiting for input ends canceled too; a late write is refused") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle task = plugin.start(kCount, R"({"steps":3,"delay_ms":1,"ask":true})");
  REQUIRE(plugin.wait_state(task, TH_STATE_WAITING_INPUT, kWait));
  CHECK(plugin.cancel(task).ok());
  const auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_CANCELED);
  CHECK(result->message == "canceled after step 1");
  // The task ended: steering gets a clear answer instead of reaching the plugin.
  CHECK(plugin.deliver(task, "too late").code == TH_TASK_ENDED);
}

TEST_CASE("count: re-attach after worker loss resumes from the last checkpoint; the old attempt is fenced") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle first = plugin.start(kCount, R"({"steps":6,"delay_ms":1,"ask":true,"ask_at":3})");
  REQUIRE(plugin.wait_state(first, TH_STATE_WAITING_INPUT, kWait));
  // The step that asks is recorded only once answered.
  REQUIRE(plugin.view(first).checkpoint == "2");
  CHECK(plugin.can_reattach(first));

  // The worker is "lost" (its thread still waits for the answer); the task comes back as attempt 2,
  // which counts step 3 again and asks again: nobody answered the first attempt.
  const TaskHandle second = plugin.reattach(first);
  REQUIRE(second.start_status.ok());
  CHECK(second.attempt == 2);
  CHECK(second.id == first.id);
  REQUIRE(plugin.wait_state(second, TH_STATE_WAITING_INPUT, kWait));
  CHECK(plugin.answer(second, "confirm", "yes").ok());
  const auto result = plugin.wait_terminal(second, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(contains(result->output, R"("version":"1.0.0")"));
  CHECK(contains(result->output, R"("resumed_from":2)"));
  CHECK(contains(result->output, R"("counted":6)"));
  CHECK(contains(result->output, R"("answer":"yes")"));
  const auto progress = plugin.view(second).of(EventType::progress);
  REQUIRE(progress.size() == 4);
  CHECK(progress.front().current == 3.0);
  CHECK(plugin.view(second).checkpoint == "6:yes");  // the answer travels with the count

  // The zombie attempt wakes up on cancel and tries to end the task: refused as stale, nothing changes.
  CHECK(plugin.cancel(first).ok());
  REQUIRE(plugin.wait_until(
      first, [](const TaskView& v) { return !v.rejected().empty(); }, kWait));
  const auto rejected = plugin.view(first).rejected();
  CHECK(rejected.back().type == EventType::complete);
  CHECK(rejected.back().answer == TH_STALE_ATTEMPT);
  CHECK(plugin.view(second).result->state == TH_STATE_SUCCEEDED);
}

TEST_CASE("count: detach stops the worker after a final checkpoint; a new generation re-attaches from it") {
  PluginUnderTest old_generation(taskhost_plugin_entry);
  const TaskHandle task = old_generation.start(kCount, R"({"steps":5,"delay_ms":1,"ask":true,"ask_at":2})");
  REQUIRE(old_generation.wait_state(task, TH_STATE_WAITING_INPUT, kWait));
  REQUIRE(old_generation.detach(task).ok());  // returns only after the worker stopped
  const TaskView detached = old_generation.view(task);
  CHECK(detached.released);
  CHECK_FALSE(detached.terminal());
  REQUIRE_FALSE(detached.events.empty());
  CHECK(detached.events.back().type == EventType::checkpoint);  // its last word
  CHECK(detached.checkpoint == "1");  // step 2 asked and was not answered: not recorded

  PluginUnderTest new_generation(taskhost_plugin_entry);
  StartOptions resume;
  resume.kind = kCount;
  resume.id = task.id;
  resume.input = task.input;
  resume.attempt = task.attempt + 1;
  resume.reattach = true;
  resume.checkpoint = detached.checkpoint;
  const TaskHandle resumed = new_generation.start(resume);
  REQUIRE(resumed.start_status.ok());
  REQUIRE(new_generation.wait_state(resumed, TH_STATE_WAITING_INPUT, kWait));  // the open question, again
  CHECK(new_generation.answer(resumed, "confirm", "no").ok());
  const auto result = new_generation.wait_terminal(resumed, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(contains(result->output, R"("resumed_from":1)"));
  CHECK(contains(result->output, R"("counted":5)"));
  CHECK(contains(result->output, R"("answer":"no")"));
}

TEST_CASE("count: an answer given to an earlier attempt comes back with the checkpoint; no second question") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  StartOptions resume;
  resume.kind = kCount;
  resume.input = R"({"steps":4,"delay_ms":1,"ask":true,"ask_at":2})";
  resume.attempt = 2;
  resume.reattach = true;
  resume.checkpoint = "3:yes";
  const TaskHandle task = plugin.start(resume);
  REQUIRE(task.start_status.ok());
  const auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(contains(result->output, R"("resumed_from":3)"));
  CHECK(contains(result->output, R"("answer":"yes")"));
  CHECK(plugin.view(task).of(EventType::input_request).empty());
}

TEST_CASE("count: bad input or checkpoint is refused at start and the task fails as invalid input") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  struct Case {
    std::string input;
    std::string why;
  };
  for (const Case& c : {Case{R"({"steps":0})", "steps must be"}, Case{"[1,2]", "input must be a JSON object"},
                        Case{R"({"ask":true,"ask_at":9,"steps":3})", "ask_at must be"}}) {
    CAPTURE(c.input);
    const TaskHandle task = plugin.start(kCount, c.input);
    CHECK(task.start_status.code == TH_INVALID_ARGUMENT);
    CHECK(contains(task.start_status.message, c.why));
    const TaskView v = plugin.view(task);
    REQUIRE(v.result);
    CHECK(v.result->state == TH_STATE_FAILED);
    CHECK(v.result->error_code == TH_ERROR_INVALID_INPUT);
  }
  StartOptions bad_checkpoint;
  bad_checkpoint.kind = kCount;
  bad_checkpoint.reattach = true;
  bad_checkpoint.checkpoint = "three";
  const TaskHandle task = plugin.start(bad_checkpoint);
  CHECK(task.start_status.code == TH_INVALID_ARGUMENT);
  CHECK(contains(task.start_status.message, "not a step number"));
}

TEST_CASE("echo: succeeds at once with its input") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle task = plugin.start("interactive.echo", R"({"a":[1,2,3]})");
  const auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(result->output == R"({"a":[1,2,3]})");
  CHECK(plugin.deliver(task, "hi").code == TH_TASK_ENDED);
}

TEST_CASE("count: many tasks at once each count on their own thread") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  std::vector<TaskHandle> tasks;
  for (int i = 0; i < 8; ++i) tasks.push_back(plugin.start(kCount, R"({"steps":5,"delay_ms":1})"));
  for (const TaskHandle& t : tasks) {
    const auto result = plugin.wait_terminal(t, kWait);
    REQUIRE(result);
    CHECK(result->state == TH_STATE_SUCCEEDED);
    CHECK(plugin.view(t).of(EventType::progress).size() == 5);
  }
}

TEST_CASE("count: destroying the plugin with tasks still running cancels and joins their threads") {
  const auto t0 = std::chrono::steady_clock::now();
  {
    PluginUnderTest plugin(taskhost_plugin_entry);
    for (int i = 0; i < 3; ++i) plugin.start(kCount, R"({"steps":1000,"delay_ms":1000})");
    plugin.start(kCount, R"({"steps":3,"delay_ms":1,"ask":true})");
  }  // ~PluginUnderTest: cancel, release (joins), destroy executors
  // Prompt cancels finish in milliseconds; the bound is loose for sanitizer builds on a busy machine, and
  // far below the ~17 minutes the counts would take. A thread that is never joined hangs here instead.
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(6));
}
