// LocalTransport::recover(): what a restarted host does with the store a previous run left behind.
//
// Unfinished tasks, in the order they were accepted:
//   - a cancel had been asked for        → ends canceled here (nobody wants it resumed);
//   - it had reached a plugin (started)  → assigned again with Resume{reattach, last checkpoint} as
//                                          attempt + 1; the router fails it with error kind "orphaned"
//                                          when its kind cannot re-attach;
//   - it never started                   → assigned again as it was;
// then its recorded messages that never got a delivery outcome are delivered again (the router queues
// them until the task starts). Recently ended tasks are loaded too, so status/wait answer across a restart.
#include "common/log.hpp"
#include "tasks/router.hpp"
#include "transport/local/local_transport.hpp"
#include "transport/local/task_view.hpp"

namespace taskhost::transport::local {

void LocalTransport::end_locally(const StoredTask& task, v1::TaskState state, v1::ErrorCode code,
                                 std::string message, std::string error_kind) {
  v1::TaskCompletion c;
  c.set_task_id(task.task_id);
  c.set_attempt(task.attempt);
  c.set_state(state);
  c.set_kind(task.kind);
  c.set_worker_id(task.worker_id);
  auto* err = c.mutable_error();
  err->set_code(code);
  err->set_message(std::move(message));
  err->set_kind(std::move(error_kind));
  on_completion(c);
}

RecoveryReport LocalTransport::recover() {
  RecoveryReport report;
  tasks::Router* router = router_.load();
  // Recently ended tasks first, so status and wait answer across a restart.
  for (auto& t : store_.recent(options_.finished_memory)) {
    if (!t.completion) continue;
    std::lock_guard lock(mu_);
    tasks_[t.task_id].status = status_from_stored(t);
    ended_order_.push_back(t.task_id);
  }
  for (auto& t : store_.unfinished()) {
    {
      auto history = store_.events(t.task_id, options_.history_per_task);
      std::lock_guard lock(mu_);
      Entry& e = entry_locked(t.task_id);
      e.status = status_from_stored(t);
      e.history.assign(history.begin(), history.end());
      e.heartbeat_interval = std::chrono::seconds(t.assignment.heartbeat_interval_secs());
    }
    if (t.cancel_requested) {
      end_locally(t, v1::CANCELED, v1::CANCELLED,
                  "task '" + t.task_id + "' was being canceled when the host stopped", "");
      ++report.canceled;
      continue;
    }
    v1::TaskAssignment a = t.assignment;
    tasks::Resume resume;
    if (t.started && a.has_execute()) {
      a.mutable_execute()->set_attempt(t.attempt + 1);
      resume.reattach = true;
      resume.checkpoint = t.checkpoint;
      store_.record_attempt(t.task_id, t.attempt + 1);
      ++report.reattached;
      log::info("recovery: re-attaching task '{}' ({}) as attempt {}{}", t.task_id, t.kind, t.attempt + 1,
                t.checkpoint.empty() ? "" : " from its checkpoint");
    } else {
      ++report.restarted;
      log::info("recovery: starting queued task '{}' ({})", t.task_id, t.kind);
    }
    if (router == nullptr) continue;
    router->assign(a, resume);
    for (const auto& m : store_.messages(t.task_id)) {
      if (m.answered) continue;
      const auto r = router->deliver(m.message, options_.delivery_timeout);
      if (!r.queued()) store_.record_message_outcome(m.message.message_id(), r);
      ++report.redelivered;
    }
  }
  return report;
}

}  // namespace taskhost::transport::local
