// interactive.count: counts steps on a worker thread per task, with progress, checkpoints, an optional
// confirmation question, steering, prompt cancel, and re-attach from the last checkpoint.
//
// Input (JSON object): {"steps": 5, "delay_ms": 20, "ask": true, "ask_at": 1}, every member optional.
// Output: {"plugin":"cpp-interactive","version":"1.0.0","counted":5,"resumed_from":0,"answer":"yes"}.
// Steering: "faster" halves the step delay; any other text is posted back as "echo: <text>".
//
// Thread rule: the host may call for different tasks at once; runs_ (a taskhost::RunTable) is safe for
// that. Each task's worker thread is joined in release(), in detach(), or, for what is left, when runs_
// is destroyed; none is ever detached.
#pragma once

#include <taskhost/sdk.hpp>

#include "count_run.hpp"

namespace interactive {

class CountExecutor final : public taskhost::TaskExecutor {
 public:
  taskhost::Status start(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  taskhost::Status cancel(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  taskhost::Status deliver(const taskhost::Task& task, const taskhost::Message& message,
                           taskhost::TaskSink& sink) override;
  bool can_reattach(const taskhost::Task& task) override;
  taskhost::Status detach(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  void release(const taskhost::Task& task) override;

 private:
  // One per started attempt. Releasing a run cancels it (past the cancel deadline the worker may still
  // run), then joins its worker.
  taskhost::RunTable<CountRun> runs_{&CountRun::cancel};
};

}  // namespace interactive
