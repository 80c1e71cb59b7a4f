// exec.run: runs a local program per task (see docs/plugins.md for the input, output and events).
//
// start() spawns the program (so a program that cannot start fails the task at once as INVALID_INPUT,
// naming it), posts "started" with its pid, and hands it to an ExecRun whose I/O thread streams its
// output and ends the task. deliver() writes steering text to its stdin; cancel() asks for SIGTERM, then
// SIGKILL after a grace. Not re-attachable (can_reattach stays false): a program cannot be adopted by
// another worker, so after a worker loss the host fails the task as orphaned.
//
// Thread rule: the host may call for different tasks at once, so the task map is behind mu_. Each task's
// I/O thread is joined, and its program killed if still running, in release() or the destructor.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <taskhost/sdk.hpp>

#include "exec_run.hpp"

namespace exec_plugin {

class ExecExecutor final : public taskhost::TaskExecutor {
 public:
  ExecExecutor() = default;
  ~ExecExecutor() override;

  taskhost::Status start(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  taskhost::Status cancel(const taskhost::Task& task, taskhost::TaskSink& sink) override;
  taskhost::Status deliver(const taskhost::Task& task, const taskhost::Message& message,
                           taskhost::TaskSink& sink) override;
  void release(const taskhost::Task& task) override;

 private:
  std::shared_ptr<ExecRun> find(th_task_ref ref);
  std::shared_ptr<ExecRun> take(th_task_ref ref);  // removes it from the map

  std::mutex mu_;
  std::map<th_task_ref, std::shared_ptr<ExecRun>> runs_;  // one per started attempt, keyed by its ref
};

}  // namespace exec_plugin
