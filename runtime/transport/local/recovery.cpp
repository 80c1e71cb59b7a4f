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
//   - no plugin serves its kind now      → waits, PENDING, until one is loaded (kind_served), then as
//                                          above. A file that failed to load, is being replaced or was
//                                          left out of a deploy for a while must not end accepted tasks;
// then its recorded messages that never got a delivery outcome are delivered again (the router queues
// them until the task starts). Recently ended tasks are loaded too, so status/wait answer across a restart.
// The new attempts are committed before the first task starts: a start that crashes the host again must
// not hand the next run the same attempt number again.
#include "common/crash_report.hpp"
#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "common/unix_time.hpp"
#include "tasks/router.hpp"
#include "transport/local/local_transport.hpp"
#include "transport/local/task_view.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <thread>

namespace taskhost::transport::local {

void LocalTransport::end_locally(const StoredTask& task, v1::TaskState state, v1::ErrorCode code,
                                 std::string message, std::string error_kind) {
  // Its watchers see the terminal state as an event before the completion, as for every other end.
  const int64_t now = emit_state_locally(task, state, message);
  v1::TaskCompletion c;
  c.set_task_id(task.task_id);
  c.set_attempt(task.attempt);
  c.set_state(state);
  c.set_kind(task.kind);
  c.set_worker_id(task.worker_id);
  c.set_unix_ms(now);
  auto* err = c.mutable_error();
  err->set_code(code);
  err->set_message(std::move(message));
  err->set_kind(std::move(error_kind));
  on_completion(c);
}

int64_t LocalTransport::emit_state_locally(const StoredTask& task, v1::TaskState state, std::string detail) {
  v1::TaskEvent e;
  e.set_task_id(task.task_id);
  e.set_attempt(task.attempt);  // the attempt that ran last
  e.set_unix_ms(unix_ms_now());
  e.set_kind(task.kind);
  e.set_worker_id(task.worker_id);
  e.mutable_state()->set_state(state);
  e.mutable_state()->set_detail(std::move(detail));
  {
    std::lock_guard lock(mu_);
    e.set_seq(entry_locked(task.task_id).last_seq + 1);  // no router task emits for it meanwhile
  }
  on_event(e);
  return e.unix_ms();
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
  // Recently ended tasks first, so status and wait answer across a restart. Only as many as memory keeps
  // ([tasks] ended_memory_mb): QA's host with 400 tasks of 200 KB each started at 177 MB under a 1 MB budget.
  for (auto& t : store_.recent_ended(options_.finished_memory, options_.finished_memory_bytes)) {
    if (!t.completion) continue;
    std::lock_guard lock(mu_);
    Entry& e = tasks_[t.task_id];
    e.status = status_from_stored(t);
    keep_ended_locked(t.task_id, e, size_of(e.status.completion()));
  }
  std::vector<std::pair<Restart, StoredTask>> restarts;
  for (auto& t : store_.unfinished()) {
    {
      auto history = store_.events(t.task_id, options_.history_per_task);
      std::lock_guard lock(mu_);
      Entry& e = entry_locked(t.task_id);
      e.status = status_from_stored(t);
      e.history.assign(history.begin(), history.end());
      // The last stored event's number. Output deltas and progress are not stored as events: one the last
      // run sent after that event may share its number with one of this run's (no watch replays those).
      if (!history.empty()) e.last_seq = history.back().seq();
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
    Restart r{t.assignment, false, {}};
    if (t.started && r.assignment.has_execute()) {
      r.assignment.mutable_execute()->set_attempt(t.attempt + 1);
      r.reattach = true;
      r.checkpoint = t.checkpoint;
    }
    restarts.emplace_back(std::move(r), std::move(t));
  }
  if (router == nullptr) return report;
  std::vector<Restart> now;
  for (auto& [r, t] : restarts) {
    const auto service = router->service_of(t.kind);
    if (!service) {
      log::warn("recovery: task '{}' waits: no plugin serves its kind '{}' now; it starts when one is loaded", t.task_id,
                t.kind);
      wait_for_kind(std::move(r), t);
      ++report.waiting;
      continue;
    }
    if (!r.reattach) {
      ++report.restarted;
      log::info("recovery: starting queued task '{}' ({})", t.task_id, t.kind);
    } else if (service->reattach) {
      ++report.reattached;
      log::info("recovery: re-attaching task '{}' ({}) as attempt {}{}", t.task_id, t.kind, t.attempt + 1,
                t.checkpoint.empty() ? "" : " from its checkpoint");
    } else {
      ++report.orphaned;
      log::warn("recovery: task '{}' had started and its kind '{}' cannot re-attach: it ends failed (orphaned)",
                t.task_id, t.kind);
    }
    now.push_back(std::move(r));
  }
  assign_recovered(*router, now);
  std::vector<v1::SteeringMessage> unanswered;
  for (const auto& r : now) append_unanswered(r.assignment.task_id(), unanswered);
  report.redelivered = deliver_again(*router, unanswered);
  // A plugin loaded while this ran (a watcher's scan) may serve kinds a task above began to wait for.
  std::vector<std::string> kinds;
  {
    std::lock_guard lock(mu_);
    for (const auto& [kind, tasks] : waiting_) kinds.push_back(kind);
  }
  for (const auto& kind : kinds) {
    if (router->service_of(kind)) kind_served(kind);
  }
  return report;
}

void LocalTransport::assign_recovered(tasks::Router& router, const std::vector<Restart>& restarts) {
  for (const auto& r : restarts) {
    if (r.reattach) store_.record_attempt(r.assignment.task_id(), r.assignment.execute().attempt());
  }
  store_.flush();  // every new attempt is durable before the first start (see the top)
  for (const auto& r : restarts) {
    uint64_t last_seq = 0;
    {
      std::lock_guard lock(mu_);
      last_seq = entry_locked(r.assignment.task_id()).last_seq;
    }
    router.assign(r.assignment, tasks::Resume{r.reattach, r.checkpoint, last_seq});
  }
}

void LocalTransport::append_unanswered(const std::string& task_id, std::vector<v1::SteeringMessage>& out) {
  for (auto& m : store_.messages(task_id)) {
    if (!m.answered) out.push_back(std::move(m.message));
  }
}

size_t LocalTransport::deliver_again(tasks::Router& router, const std::vector<v1::SteeringMessage>& messages) {
  for (const auto& m : messages) {
    const auto receipt = router.deliver(m, options_.delivery_timeout);
    if (!receipt.queued()) store_.record_message_outcome(m.task_id(), m.message_id(), receipt);
  }
  return messages.size();
}

void LocalTransport::wait_for_kind(Restart r, const StoredTask& t) {
  // Under the attempt that ran last: the next one is counted when it starts.
  emit_state_locally(t, v1::PENDING,
                     "waiting for a plugin that serves kind '" + t.kind + "': none was loaded when the host restarted");
  std::lock_guard lock(mu_);
  entry_locked(t.task_id).waiting = Waiting::for_kind;
  waiting_[t.kind].push_back(std::move(r));
}

void LocalTransport::kind_served(const std::string& kind) {
  {
    std::lock_guard lock(mu_);
    if (!waiting_.contains(kind)) return;  // the usual case: no thread, no queue
  }
  std::lock_guard lock(starter_mu_);
  if (starter_stop_) return;  // detached: the tasks wait for the next run, as when draining
  served_kinds_.push_back(kind);
  if (!starter_.joinable()) starter_ = std::thread([this] { starter_loop(); });
  starter_cv_.notify_one();
}

void LocalTransport::starter_loop() {
  std::unique_lock lock(starter_mu_);
  for (;;) {
    starter_cv_.wait(lock, [&] { return starter_stop_ || !served_kinds_.empty(); });
    if (starter_stop_) return;
    const std::string kind = std::move(served_kinds_.front());
    served_kinds_.pop_front();
    lock.unlock();
    try {
      start_waiting(kind);
    } catch (const std::exception& e) {  // a store that cannot write, say: said; the store still has
                                         // what did not start, for the next run
      log::error("recovery: starting the tasks that waited for kind '{}' failed: {}", kind, e.what());
    }
    lock.lock();
  }
}

void LocalTransport::stop_starter() {
  {
    std::lock_guard lock(starter_mu_);
    starter_stop_ = true;
  }
  starter_cv_.notify_all();
  if (starter_.joinable()) starter_.join();
}

void LocalTransport::start_waiting(const std::string& kind) {
  tasks::Router* router = router_.load();
  // Draining, the router would refuse them, and a refusal is a failed completion: they wait for the
  // next run instead. Unbound again since the switch (a reload racing the watcher): they wait on.
  if (router == nullptr || !accepting_.load() || !router->service_of(kind)) return;
  std::vector<Restart> restarts;
  {
    std::lock_guard lock(mu_);
    auto it = waiting_.find(kind);
    if (it == waiting_.end()) return;
    restarts = std::move(it->second);
    waiting_.erase(it);
    for (const auto& r : restarts) entry_locked(r.assignment.task_id()).waiting = Waiting::starting;
  }
  log::info("recovery: kind '{}' is served now: starting the {} task(s) that waited for it", kind, restarts.size());
  assign_recovered(*router, restarts);
  const size_t delivered = release_held(*router, restarts);
  log::info("recovery: kind '{}': the {} task(s) that waited for it started; {} message(s) held for them delivered",
            kind, restarts.size(), delivered);
}

size_t LocalTransport::release_held(tasks::Router& router, const std::vector<Restart>& started) {
  // Steering sent while they waited was recorded and answered "queued" (send(), under mu_). It is
  // delivered here, oldest first, while the tasks still count as starting: send() keeps holding what
  // comes meanwhile, and the next round delivers it. Only a round that finds nothing new, under the lock
  // send() takes, ends the wait, so no message overtakes one sent before it, and each is delivered once.
  // (task id, message id): a queued delivery has no outcome in the store yet. Ids are per task, so two
  // of these tasks may each hold an "m1".
  std::set<std::pair<std::string, std::string>> delivered;
  for (bool first = true;; first = false) {
    std::vector<v1::SteeringMessage> held;
    std::vector<std::string> canceled;
    {
      std::lock_guard lock(mu_);
      for (const auto& r : started) append_unanswered(r.assignment.task_id(), held);
      std::erase_if(held, [&](const v1::SteeringMessage& m) { return delivered.count({m.task_id(), m.message_id()}) > 0; });
      if (held.empty()) {
        for (const auto& r : started) {
          Entry& e = entry_locked(r.assignment.task_id());
          e.waiting = Waiting::no;
          if (e.cancel_while_starting) canceled.push_back(r.assignment.task_id());
          e.cancel_while_starting = false;
        }
      }
    }
    if (held.empty()) {
      for (const auto& id : canceled) {
        v1::CancelRequest c;
        c.set_task_id(id);
        router.cancel(c, options_.delivery_timeout);
      }
      return delivered.size();
    }
    // A test holds the first round back to send a message into this window (tests/local/restart_test.cpp).
    if (first && failpoint("local.recovery.slow_release")) std::this_thread::sleep_for(std::chrono::seconds(2));
    deliver_again(router, held);
    for (const auto& m : held) delivered.emplace(m.task_id(), m.message_id());
  }
}

}  // namespace taskhost::transport::local
