#include "timer_executor.hpp"

#include <algorithm>
#include <string>

namespace timer_plugin {

using taskhost::Status;

Status TimerExecutor::start(const taskhost::Task& task, taskhost::TaskSink& sink) {
  TimerInput input;
  if (Status s = parse_timer_input(task.input(), &input); !s.ok()) return s;
  TimerPlan plan = TimerPlan::starting_at(wall_clock_ms_ceil(), input);
  // A re-attach without a checkpoint lost its first attempt before start() returned: start afresh.
  if (task.reattach() && !task.checkpoint().empty()) {
    if (Status s = decode_checkpoint(task.checkpoint(), &plan); !s.ok()) return s;
  }
  // Before the scheduler can fire: the deadline must be durable before any progress is visible.
  sink.checkpoint(encode_checkpoint(plan));
  const int64_t left = std::max<int64_t>(0, plan.deadline_ms - wall_clock_ms());
  sink.state(taskhost::RunState::running,
             (task.reattach() ? "resumed: " : "waiting: ") + std::to_string(left) + " ms left");
  if (!scheduler_.add(task.ref(), sink, plan, task.reattach())) return Status::Failed("task attempt already started");
  return Status::Ok();
}

Status TimerExecutor::cancel(const taskhost::Task& task, taskhost::TaskSink& sink) {
  // Unknown or already ended: the timer finished first, which is what cancel wants.
  if (const std::optional<int> done = scheduler_.stop(task.ref())) {
    sink.canceled("canceled after " + std::to_string(*done) + " step(s)");
  }
  return Status::Ok();
}

bool TimerExecutor::can_reattach(const taskhost::Task&) { return true; }

Status TimerExecutor::detach(const taskhost::Task& task, taskhost::TaskSink& sink) {
  const std::optional<TimerPlan> plan = scheduler_.remove(task.ref());
  if (!plan) return Status::Failed("task '" + task.id() + "' is not running here");
  sink.checkpoint(encode_checkpoint(*plan));  // the last word of this attempt: a newer one resumes here
  return Status::Ok();
}

void TimerExecutor::release(const taskhost::Task& task) { scheduler_.remove(task.ref()); }

}  // namespace timer_plugin
