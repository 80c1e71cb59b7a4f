// Glue between plugin.h's function table and taskhost::TaskExecutor (not part of the author's API).
//
// Every function here is what the host calls through a th_kind_descriptor. Each one copies the host's
// call-scoped structs into SDK values, calls the executor's virtual method, and turns its Status into a
// status code plus error text in the host's buffer. Each is noexcept and catches everything: an
// exception never crosses the ABI (std::exception -> TH_FAILED with what(), anything else -> TH_FAILED
// "unknown exception").
//
// Ownership: th_executor* is the TaskExecutor* the SDK allocated in on_create_executor; only
// on_destroy_executor deletes it. Thread rule: as plugin.h says per function; nothing here adds state.
#pragma once

#include <taskhost/plugin.h>

#include <exception>
#include <memory>
#include <taskhost/sdk/status.hpp>
#include <taskhost/sdk/task.hpp>
#include <taskhost/sdk/task_executor.hpp>

namespace taskhost::internal {

struct ExecutorAccess {
  static void bind(TaskExecutor& executor, const th_host_api* host) { executor.host_ = host; }
  static const th_host_api* host(const TaskExecutor& executor) { return executor.host_; }
};

inline TaskExecutor& executor_of(th_executor* self) { return *reinterpret_cast<TaskExecutor*>(self); }

inline th_status report(th_error_buf* err, const Status& status) noexcept {
  return status.ok() ? TH_OK : th_error_set(err, status.code, status.message.c_str());
}

// Runs `fn() -> Status` and converts whatever it throws.
template <typename Fn>
th_status guarded(th_error_buf* err, Fn&& fn) noexcept {
  try {
    return report(err, fn());
  } catch (const std::exception& e) {
    return th_error_set(err, TH_FAILED, e.what());
  } catch (...) {
    return th_error_set(err, TH_FAILED, "unknown exception");
  }
}

// For the calls with no error buffer (release, can_reattach): the exception goes to the host's log.
inline void log_escaped(th_executor* self, const th_task_info* info, const char* call, const char* what) noexcept {
  const th_host_api* host = ExecutorAccess::host(executor_of(self));
  if (host == nullptr || host->log == nullptr) return;
  char line[512];
  const char* parts[] = {call, " threw: ", what};
  size_t n = 0;
  for (const char* part : parts) {
    for (size_t i = 0; part[i] != '\0' && n + 1 < sizeof(line); ++i) line[n++] = part[i];
  }
  line[n] = '\0';
  host->log(host->context, info ? info->task : 0, TH_LOG_ERROR, line);
}

template <typename Executor>
th_status on_create_executor(const th_host_api* host, th_executor** out, th_error_buf* err) noexcept {
  if (out == nullptr) return th_error_set(err, TH_INVALID_ARGUMENT, "on_create_executor: out is NULL");
  *out = nullptr;
  return guarded(err, [&] {
    std::unique_ptr<TaskExecutor> executor = std::make_unique<Executor>();
    ExecutorAccess::bind(*executor, host);
    *out = reinterpret_cast<th_executor*>(executor.release());
    return Status::Ok();
  });
}

inline void on_destroy_executor(th_executor* self) noexcept { delete &executor_of(self); }

// A task call: checks the pointers the host passed, then runs `fn(executor, task, sink)`.
template <typename Fn>
th_status task_call(th_executor* self, const th_task_info* info, th_error_buf* err, Fn&& fn) noexcept {
  if (self == nullptr || info == nullptr) return th_error_set(err, TH_INVALID_ARGUMENT, "NULL executor or task info");
  return guarded(err, [&] {
    TaskExecutor& executor = executor_of(self);
    const Task task(ExecutorAccess::host(executor), *info);
    TaskSink sink = task.sink();
    return fn(executor, task, sink);
  });
}

inline th_status on_start(th_executor* self, const th_task_info* info, th_error_buf* err) noexcept {
  return task_call(self, info, err, [](TaskExecutor& e, const Task& t, TaskSink& s) { return e.start(t, s); });
}

inline th_status on_cancel(th_executor* self, const th_task_info* info, th_error_buf* err) noexcept {
  return task_call(self, info, err, [](TaskExecutor& e, const Task& t, TaskSink& s) { return e.cancel(t, s); });
}

inline th_status on_deliver(th_executor* self, const th_task_info* info, const th_message* message,
                            th_error_buf* err) noexcept {
  if (message == nullptr) return th_error_set(err, TH_INVALID_ARGUMENT, "NULL message");
  return task_call(self, info, err, [message](TaskExecutor& e, const Task& t, TaskSink& s) {
    return e.deliver(t, Message::from(*message), s);
  });
}

inline th_status on_reconcile(th_executor* self, const th_task_info* info, th_error_buf* err) noexcept {
  return task_call(self, info, err, [](TaskExecutor& e, const Task& t, TaskSink& s) { return e.reconcile(t, s); });
}

inline th_status on_detach(th_executor* self, const th_task_info* info, th_error_buf* err) noexcept {
  return task_call(self, info, err, [](TaskExecutor& e, const Task& t, TaskSink& s) { return e.detach(t, s); });
}

inline int32_t on_can_reattach(th_executor* self, const th_task_info* info) noexcept {
  if (self == nullptr || info == nullptr) return 0;
  try {
    TaskExecutor& executor = executor_of(self);
    return executor.can_reattach(Task(ExecutorAccess::host(executor), *info)) ? 1 : 0;
  } catch (const std::exception& e) {
    log_escaped(self, info, "can_reattach", e.what());
  } catch (...) {
    log_escaped(self, info, "can_reattach", "unknown exception");
  }
  return 0;
}

inline void on_release(th_executor* self, const th_task_info* info) noexcept {
  if (self == nullptr || info == nullptr) return;
  try {
    TaskExecutor& executor = executor_of(self);
    executor.release(Task(ExecutorAccess::host(executor), *info));
  } catch (const std::exception& e) {
    log_escaped(self, info, "release", e.what());
  } catch (...) {
    log_escaped(self, info, "release", "unknown exception");
  }
}

}  // namespace taskhost::internal
