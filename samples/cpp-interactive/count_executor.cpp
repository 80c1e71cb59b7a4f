#include "count_executor.hpp"

#include <algorithm>
#include <charconv>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flat_json.hpp"

namespace interactive {

using taskhost::Status;

namespace {

constexpr int kMaxSteps = 100000;
constexpr int kMaxDelayMs = 60000;

// Reads the task input; an error names the bad member.
Status parse_settings(const std::string& input, CountSettings* out) {
  if (!looks_like_object(input)) return Status::InvalidArgument("input must be a JSON object");
  CountSettings s;
  if (auto v = json_number(input, "steps")) s.steps = static_cast<int>(*v);
  if (auto v = json_number(input, "delay_ms")) s.delay_ms = static_cast<int>(*v);
  if (auto v = json_bool(input, "ask")) s.ask = *v;
  if (auto v = json_number(input, "ask_at")) s.ask_at = static_cast<int>(*v);
  if (s.steps < 1 || s.steps > kMaxSteps)
    return Status::InvalidArgument("steps must be 1.." + std::to_string(kMaxSteps));
  if (s.delay_ms < 0 || s.delay_ms > kMaxDelayMs) return Status::InvalidArgument("delay_ms must be 0..60000");
  if (s.ask && (s.ask_at < 1 || s.ask_at > s.steps)) return Status::InvalidArgument("ask_at must be 1..steps");
  *out = s;
  return Status::Ok();
}

// What a checkpoint records ("" = none yet): the last step done, and the answer to "confirm" once
// given ("7" or "7:yes"), so that a re-attached attempt neither asks again nor forgets the answer.
Status parse_checkpoint(const std::string& checkpoint, CountProgress* out) {
  *out = {};
  if (checkpoint.empty()) return Status::Ok();
  const size_t colon = checkpoint.find(':');
  const std::string_view number = std::string_view(checkpoint).substr(0, colon);
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), out->step);
  if (ec != std::errc() || end != number.data() + number.size() || out->step < 0) {
    return Status::InvalidArgument("checkpoint '" + checkpoint + "' is not a step number (optionally followed by ':ANSWER')");
  }
  if (colon != std::string::npos) out->answer = checkpoint.substr(colon + 1);
  return Status::Ok();
}

}  // namespace

Status CountExecutor::start(const taskhost::Task& task, taskhost::TaskSink& sink) {
  CountSettings settings;
  if (Status s = parse_settings(task.input(), &settings); !s.ok()) return s;
  CountProgress resume;
  if (task.reattach()) {
    if (Status s = parse_checkpoint(task.checkpoint(), &resume); !s.ok()) return s;
  }
  resume.step = std::min(resume.step, settings.steps);
  auto run = std::make_shared<CountRun>(sink, settings, resume);
  if (!runs_.insert(task.ref(), run)) return Status::Failed("task attempt already started");
  run->launch();
  return Status::Ok();
}

Status CountExecutor::cancel(const taskhost::Task& task, taskhost::TaskSink&) {
  if (auto run = runs_.find(task.ref())) run->cancel();
  return Status::Ok();  // nothing running: it already ended, which is what cancel wants
}

Status CountExecutor::deliver(const taskhost::Task& task, const taskhost::Message& message, taskhost::TaskSink&) {
  auto run = runs_.find(task.ref());
  if (!run) return Status::Failed("task '" + task.id() + "' is not running here");
  return run->deliver(message);
}

bool CountExecutor::can_reattach(const taskhost::Task&) { return true; }

Status CountExecutor::detach(const taskhost::Task& task, taskhost::TaskSink&) {
  auto run = runs_.take(task.ref());
  if (!run) return Status::Failed("task '" + task.id() + "' is not running here");
  run->detach();  // joins: the final checkpoint is written when this returns
  return Status::Ok();
}

void CountExecutor::release(const taskhost::Task& task) { runs_.release(task.ref()); }

}  // namespace interactive
