// timer.wait: waits {"ms": N, "steps": K} with a progress event per step, then succeeds with
// {"waited_ms": W, "resumed": bool} (see docs/plugins.md).
//
// Re-attachable: start() checkpoints the plan (wall-clock start and deadline) before anything fires, so
// a re-attach after a worker loss or a reload resumes from the checkpoint and ends at the ORIGINAL
// deadline, at once if it already passed. detach() stops the timer and rewrites that checkpoint.
// All timers share the executor's one TimerScheduler thread.
//
// Thread rule: the scheduler is safe from any thread, so the host may call for many tasks at once.
#pragma once

#include <taskhost/sdk.hpp>

#include "timer_scheduler.hpp"

namespace timer_plugin {

class TimerExecutor final : public taskhost::TaskExecutor {
 public:
  taskhost::Status start(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  taskhost::Status cancel(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  bool can_reattach(const taskhost::Task& task) override;
  taskhost::Status detach(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  void release(const taskhost::Task& task) override;

 private:
  TimerScheduler scheduler_;
};

}  // namespace timer_plugin
