#include "count_executor.hpp"

#include <algorithm>
#include <charconv>
#include <memory>
#include <string>
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

// The step a checkpoint records ("" = none yet).
Status parse_checkpoint(const std::string& checkpoint, int* step) {
  *step = 0;
  if (checkpoint.empty()) return Status::Ok();
  const auto [end, ec] = std::from_chars(checkpoint.data(), checkpoint.data() + checkpoint.size(), *step);
  if (ec != std::errc() || end != checkpoint.data() + checkpoint.size() || *step < 0) {
    return Status::InvalidArgument("checkpoint '" + checkpoint + "' is not a step number");
  }
  return Status::Ok();
}

}  // namespace

Status CountExecutor::start(const taskhost::Task& task, taskhost::TaskSink& sink) {
  CountSettings settings;
  if (Status s = parse_settings(task.input(), &settings); !s.ok()) return s;
  int resume_from = 0;
  if (task.reattach()) {
    if (Status s = parse_checkpoint(task.checkpoint(), &resume_from); !s.ok()) return s;
  }
  auto run = std::make_shared<CountRun>(sink, settings, std::min(resume_from, settings.steps));
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
