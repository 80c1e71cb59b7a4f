// LocalTransport::recover(): what a restarted host does with the store a previous run left behind.
//
// Crashes during a task's call were counted before (record_crashes). Unfinished tasks, in the order they
// were accepted:
//   - a cancel had been asked for        → ends canceled here (nobody wants it resumed);
//   - it crashed the host max_plugin_crashes times → ends failed, error kind "plugin_crash", unstarted:
//                                          started again it would only crash the host again;
//   - it had reached a plugin (started)  → assigned again with Resume{reattach, last checkpoint} as
//                                          attempt + 1; the router fails it with error kind "orphaned"
//                                          when its kind cannot re-attach;
//   - it never started                   → assigned again as it was;
// then its recorded messages that never got a delivery outcome are delivered again (the router queues
// them until the task starts). Recently ended tasks are loaded too, so status/wait answer across a restart.
// The new attempts are committed before the first task starts: a start that crashes the host again must
// not hand the next run the same attempt number again.
#include "common/crash_report.hpp"
#include "common/log.hpp"
#include "tasks/router.hpp"
#include "transport/local/local_transport.hpp"
#include "transport/local/task_view.hpp"

#include <fmt/format.h>

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

void LocalTransport::record_crashes(const std::vector<crash_report::Note>& crashes) {
  for (const auto& note : crashes) {
    const uint32_t count = store_.record_crash(note.task_id, note.signal);
    log::error("recovery: the last run died of {} in a call of task '{}' (kind '{}'); crashes of this task so far: "
               "{}{}",
               crash_report::signal_name(note.signal), note.task_id, note.kind, count,
               options_.max_plugin_crashes == 0
                   ? std::string()
                   : fmt::format(" (at {} it is failed instead of started again: [tasks] max_plugin_crashes)",
                                 options_.max_plugin_crashes));
  }
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
  struct Restart {
    v1::TaskAssignment assignment;
    tasks::Resume resume;
  };
  std::vector<Restart> restarts;
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
    if (const auto crashed = store_.crashes(t.task_id);
        crashed && options_.max_plugin_crashes > 0 && crashed->count >= options_.max_plugin_crashes) {
      // Whether or not its start was recorded: a crash in the first start often comes before that write.
      end_locally(t, v1::FAILED, v1::WORKER_ERROR,
                  fmt::format("task '{}' (kind '{}') was in a call when the host died of a fatal signal {} times "
                              "(last {}); it is not started again ([tasks] max_plugin_crashes = {}). Its plugin "
                              "may crash on this input: run it with [plugins] isolation = \"process\" to keep "
                              "such a crash from ending the host",
                              t.task_id, t.kind, crashed->count, crash_report::signal_name(crashed->last_signal),
                              options_.max_plugin_crashes),
                  "plugin_crash");
      ++report.crashed;
      continue;
    }
    Restart r{t.assignment, {}};
    if (t.started && r.assignment.has_execute()) {
      r.assignment.mutable_execute()->set_attempt(t.attempt + 1);
      r.resume.reattach = true;
      r.resume.checkpoint = t.checkpoint;
      store_.record_attempt(t.task_id, t.attempt + 1);
      ++report.reattached;
      log::info("recovery: re-attaching task '{}' ({}) as attempt {}{}", t.task_id, t.kind, t.attempt + 1,
                t.checkpoint.empty() ? "" : " from its checkpoint");
    } else {
      ++report.restarted;
      log::info("recovery: starting queued task '{}' ({})", t.task_id, t.kind);
    }
    restarts.push_back(std::move(r));
  }
  store_.flush();  // every new attempt is durable before the first start (see the top)
  if (router == nullptr) return report;
  for (const auto& r : restarts) {
    router->assign(r.assignment, r.resume);
    for (const auto& m : store_.messages(r.assignment.task_id())) {
      if (m.answered) continue;
      const auto receipt = router->deliver(m.message, options_.delivery_timeout);
      if (!receipt.queued()) store_.record_message_outcome(m.message.message_id(), receipt);
      ++report.redelivered;
    }
  }
  return report;
}

}  // namespace taskhost::transport::local
