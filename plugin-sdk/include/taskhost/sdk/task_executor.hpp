// taskhost::TaskExecutor — the one class a plugin author writes per task kind.
//
// Override cancel() (required) and whichever of the others apply; the defaults are the protocol's:
// start/deliver/detach answer Unsupported, reconcile succeeds, can_reattach is false, release does
// nothing. A method reports failure by returning a non-OK Status; an exception escaping a method is
// caught by the SDK and becomes TH_FAILED with its what() text, so it never reaches the host.
//
// Lifetime: the SDK creates one instance per kind per loaded generation (default constructor) and
// deletes it when the host destroys the executor, after every task was released. The destructor must
// join every thread the executor started: the plugin's code is unmapped right after.
//
// Thread rule: calls for ONE task never overlap and arrive in order (start, deliver..., cancel, release).
// Calls for DIFFERENT tasks may run concurrently on different host threads, so state shared between
// tasks (e.g. a map of running tasks) needs the executor's own lock. Methods should return promptly:
// long work belongs on the plugin's own threads, reporting through the task's TaskSink.
//
// The SDK tells the host which optional calls a kind implements by looking at what the class declares:
// do not overload these method names.
#pragma once

#include <taskhost/plugin.h>

#include <string_view>
#include <taskhost/sdk/status.hpp>
#include <taskhost/sdk/task.hpp>
#include <taskhost/sdk/task_sink.hpp>

namespace taskhost {

namespace internal {
struct ExecutorAccess;
}

class TaskExecutor {
 public:
  TaskExecutor() = default;
  virtual ~TaskExecutor() = default;
  TaskExecutor(const TaskExecutor&) = delete;
  TaskExecutor& operator=(const TaskExecutor&) = delete;

  // Begin `task`, or resume it when task.reattach() (then task.checkpoint() holds the last checkpoint
  // and task.attempt() was bumped). OK = accepted: the task runs until a terminal sink call. Any other
  // status fails the task with the status message.
  virtual Status start(const Task& task, TaskSink& sink) {
    (void)task, (void)sink;
    return Status::Unsupported("this kind does not start tasks");
  }

  // Cooperative cancel: wind down and end through the sink (canceled, or succeeded/failed if the work
  // finished first). Required. The host ends the task canceled itself if a deadline passes.
  virtual Status cancel(const Task& task, TaskSink& sink) = 0;

  // A steering message, or an answer to request_input (message.in_reply_to). Unsupported by default.
  virtual Status deliver(const Task& task, const Message& message, TaskSink& sink) {
    (void)task, (void)message, (void)sink;
    return Status::Unsupported("this kind does not take steering messages");
  }

  // Refresh the state of a polled task (e.g. a remote job). No-op success by default.
  virtual Status reconcile(const Task& task, TaskSink& sink) {
    (void)task, (void)sink;
    return Status::Ok();
  }

  // Whether `task` could be resumed by start() with reattach on another worker or generation.
  virtual bool can_reattach(const Task& task) {
    (void)task;
    return false;
  }

  // Let go of a running task WITHOUT ending it so a newer generation can re-attach it: stop its work,
  // write a final checkpoint, return. No sink call for this attempt may follow. Unsupported by default.
  virtual Status detach(const Task& task, TaskSink& sink) {
    (void)task, (void)sink;
    return Status::Unsupported("this kind cannot detach tasks");
  }

  // The task is over for this executor (terminal, detached, or past the cancel deadline): free its state
  // and stop (join) any work still running for it. Sink calls for it are rejected from now on.
  virtual void release(const Task& task) { (void)task; }

 protected:
  // Writes to the host's log, not tied to a task. Safe from any thread once the executor was created
  // (not from the constructor: the host table is bound right after it).
  void log(LogLevel level, std::string_view message) const noexcept { TaskSink(host_, 0).log(level, message); }

 private:
  friend struct internal::ExecutorAccess;
  const th_host_api* host_ = nullptr;  // host-owned; valid until this executor is destroyed
};

}  // namespace taskhost
