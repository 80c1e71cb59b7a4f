// exec.run: runs a local program per task (see docs/plugins.md for the input, output and events).
//
// start() hands the request to an ExecRun whose I/O thread spawns the program (so a program that cannot
// start fails the task at once as INVALID_INPUT, naming it; and the program dies with that thread, not
// with a host pool thread), posts "started" with its pid, streams its output and ends the task. deliver() writes steering text to its stdin; cancel() asks for SIGTERM, then
// SIGKILL after a grace. Not re-attachable (can_reattach stays false): a program cannot be adopted by
// another worker, so after a worker loss the host fails the task as orphaned.
//
// Thread rule: the host may call for different tasks at once; runs_ (a taskhost::RunTable) is safe for
// that. Each task's I/O thread is joined, and its program killed if still running, in release() or, for
// what is left, when runs_ is destroyed.
#pragma once

#include <taskhost/sdk.hpp>

#include "exec_run.hpp"

namespace exec_plugin {

class ExecExecutor final : public taskhost::TaskExecutor {
 public:
  taskhost::Status start(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  taskhost::Status cancel(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  taskhost::Status deliver(const taskhost::Task& task, const taskhost::Message& message,
                           taskhost::TaskSink& sink) override;
  void release(const taskhost::Task& task) override;

 private:
  // One per started attempt. Releasing a run abandons it (past the cancel deadline the program may still
  // run: SIGKILL), then joins its I/O thread.
  taskhost::RunTable<ExecRun> runs_{&ExecRun::abandon};
};

}  // namespace exec_plugin
