// Router internals shared by router.cpp (admission, lifecycle), task_calls.cpp (plugin calls on the
// strands) and host_api.cpp (the sink). Not part of the public interface.
#pragma once

#include "common/spin_wait.hpp"
#include "common/unix_time.hpp"
#include "plugin/host_scope.hpp"
#include "tasks/call_pool.hpp"
#include "tasks/finished_tasks.hpp"
#include "tasks/router.hpp"
#include "tasks/scheduler.hpp"
#include "tasks/scratch.hpp"
#include "tasks/task.hpp"

#include <boost/container/small_vector.hpp>
#include <boost/unordered/unordered_flat_map.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace taskhost::tasks {

// Tasks admitted by one admission pass: usually one (the task just assigned, or the successor of the one
// that ended), so it lives on the stack.
using Admitted = boost::container::small_vector<TaskPtr, 2>;

class Router::Impl {
 public:
  Impl(RouterOptions options, registry::KindRegistry& registry, transport::TaskOutbox& outbox);

  // ---- admission and bookkeeping (router.cpp) -------------------------------------------------
  AssignOutcome assign(const v1::TaskAssignment& assignment, const Resume& resume);
  std::vector<AssignOutcome> assign_batch(std::span<const v1::TaskAssignment> assignments);
  // An assignment that passed validation, on its way into the maps: its task exists and is locked.
  struct Candidate {
    const v1::TaskAssignment* assignment = nullptr;
    const Resume* resume = nullptr;
    uint32_t attempt = 1;
    th_encoding encoding{};
    uint32_t plugin = 0;  // Binding::plugin of the kind at admission: whose share of the pool it uses
    bool lossy = false;
    std::string encoded;
    TaskPtr task;  // null: answered by prepare()
    bool in_maps = false;
    std::string queued;  // why it waits, when the limits did not let it start at admission
    AssignOutcome outcome;
  };
  // Validation and input encoding, outside every lock. Returns the answer for an assignment settled
  // here (malformed, discovery, unknown kind); otherwise fills `c`.
  std::optional<AssignOutcome> prepare(const v1::TaskAssignment& assignment, const Resume& resume, Candidate& c);
  // Puts every prepared candidate in the maps under one lock, emits their PENDING events, starts what
  // the limits allow: one critical section and one burst of posts for the whole group.
  void admit(std::span<Candidate> candidates);
  void answer_discovery(const v1::TaskAssignment& assignment);
  AssignOutcome reject(const v1::TaskAssignment& assignment, const std::string& kind, v1::ErrorCode code,
                       std::string message);
  // Moves admissible pending tasks to started (mu held) into `out`; launch() posts their start.
  void collect_admissions_locked(Admitted& out);
  void launch(const Admitted& admitted);
  size_t free_slots_locked(const std::string& kind) const;  // mu held
  size_t kind_limit(const std::string& kind) const;
  SlotCounts& counts_locked(const std::string& kind);  // the kind's entry, made (with its limit) on first use
  CallPool::Lane* plugin_lane_locked(uint32_t plugin);  // the plugin's share of the pool, made on first use
  TaskPtr find_active(std::string_view id) const;
  v1::DeliveryReceipt receipt_for_missing(std::string_view task_id, std::string_view message_id) const;
  TaskSnapshot snapshot_locked(const Task& t) const;  // t.mu held
  void fill_snapshot_locked(const Task& t, TaskSnapshot& s) const;  // t.mu held; overwrites every field
  // Removes an ended task from the live maps, frees its slot and admits the next. Strand or owner only.
  void retire(const TaskPtr& t, bool held_slot);

  // ---- the task's life (router.cpp) --------------------------------------------------------------
  // All *_locked helpers require t.mu held.
  template <typename Fill>
  void emit_locked(Task& t, Fill&& fill);
  // `queued`: why the task waits for a slot (its detail then), or empty when it is merely accepted.
  void emit_pending_locked(Task& t, std::string queued = {});
  // Why a pending task has not started (router lock held): its kind's limit, or the host's.
  std::string queued_reason_locked(const Task& t) const;
  bool set_state_locked(Task& t, v1::TaskState state, std::string detail);
  // Fills `c` (usually a scratch message) with the completion header of t's current attempt.
  void completion_locked(const Task& t, v1::TaskState state, v1::TaskCompletion& c) const;
  // Publishes the one completion and marks the task ended. False if it had already ended.
  bool end_locked(Task& t, const v1::TaskCompletion& completion);
  bool fail_locked(Task& t, v1::ErrorCode code, std::string message, std::string error_kind = {});
  void schedule_heartbeat(const TaskPtr& t, uint32_t attempt, Scheduler::Clock::time_point due);
  void schedule_cancel_deadline(const TaskPtr& t, uint32_t attempt);

  // ---- plugin calls, always on the task's strand (task_calls.cpp) -------------------------------
  // Runs fn(t) on t's strand; afterwards, if the task ended during that handler (a plugin completing
  // inside the call, as instant kinds do), finalizes it right there instead of paying a second hop.
  template <typename Fn>
  void post(const TaskPtr& t, Fn&& fn);
  // The task's start on `on`, or on its kind's current generation when `on` is empty. `lost`: why a
  // re-attach is needed (its failure then says so).
  void start_on_strand(const TaskPtr& t, const registry::Binding& on = {}, std::string_view lost = {});
  void deliver_on_strand(const TaskPtr& t, v1::SteeringMessage message, ReceiptCallback done);
  // A message whose sender had a provisional receipt (queued before the start, or an answer held for
  // its question): delivered now; the final receipt goes to the outbox, and a refusal also shows in the
  // task's own events, saying when it was `sent`.
  void deliver_provisional(const TaskPtr& t, v1::SteeringMessage message, std::string_view sent);
  // Router::cancel for a task found active: ends it at once when it never started or its plugin
  // process is down; otherwise sets its cancel deadline and queues the plugin's cancel on its strand.
  void request_cancel(const TaskPtr& t, const v1::CancelRequest& request, ReceiptCallback done);
  void cancel_on_strand(const TaskPtr& t, v1::CancelRequest request, ReceiptCallback done);
  // A draining host's running task (Router::drain, Running::leave_reattachable): detached and dropped
  // without a completion when its kind can re-attach it (the durable transport re-attaches it in its
  // next run), canceled otherwise.
  void leave_for_next_run_on_strand(const TaskPtr& t);
  // Why a draining host cancels what it does not leave: "host <worker id> is shutting down".
  std::string shutting_down() const { return "host " + options.worker_id + " is shutting down"; }
  void reconcile_on_strand(const TaskPtr& t, ReceiptCallback done);
  bool migrate_on_strand(const TaskPtr& t);  // true: it moved
  // Releases the attempt `old` runs (with `call`) and starts the next one re-attached on `on` (see
  // start_on_strand), unless the task ended or was canceled meanwhile.
  void next_attempt_on_strand(const TaskPtr& t, registry::Binding old, const plugin::TaskCall& call,
                              const registry::Binding& on, std::string_view lost);
  // Attempt `attempt` of the task lost its isolated plugin's process while none of its calls ran, and the
  // plugin runs again (HostHooks::reattach_lost_task): re-attached as attempt + 1, or failed saying
  // `reason` and why not.
  void reattach_lost_on_strand(const TaskPtr& t, uint32_t attempt, const std::string& reason);
  // The end of a started task: on_release, drop the generation, retire. Idempotent.
  void finalize_on_strand(const TaskPtr& t);
  // A call on the strand threw (a plugin that let a C++ exception out through the C ABI, which plugin.h
  // forbids, or a host bug): the task fails naming its kind and the reason, and ends, rather than
  // staying RUNNING with no call left to end it.
  void fail_after_exception(const TaskPtr& t, const std::string& what);

  // ---- the sink (host_api.cpp) -------------------------------------------------------------------
  struct Locked {
    TaskPtr task;
    std::unique_lock<std::mutex> lock;
    th_status status = TH_OK;
  };
  // Finds the task of `ref` and locks it; status says why not when it is not OK.
  Locked lock_ref(th_task_ref ref);
  TaskPtr find_by_ref(th_task_ref ref);  // the live task of `ref`'s serial (any attempt), unlocked; or null
  static th_host_api make_host_api(Impl* self);
  static const plugin::HostHooks* host_hooks();  // the router's, in every table's HostScope

  // ---- state -------------------------------------------------------------------------------------
  const RouterOptions options;
  registry::KindRegistry& registry;
  transport::TaskOutbox& outbox;
  plugin::HostScope own_scope;  // the context of `api`: unscoped (each generation gets a scoped copy)
  th_host_api api;
  CallPool pool;
  Scheduler scheduler;

  // Guards everything below. Taken before any Task::mu, never while holding one. Spins before it sleeps: admission and
  // retirement take it once per task each, from different threads (common/spin_wait.hpp).
  mutable SpinThenBlockMutex mu;
  // Active tasks (pending, running, waiting_input), keyed by a view of the task's own id (the value keeps
  // it alive). Open addressing: admitting and retiring a task allocate nothing once the table has grown.
  boost::unordered_flat_map<std::string_view, TaskPtr, std::hash<std::string_view>> by_id;
  std::deque<TaskPtr> pending;                         // accepted, waiting for a slot, in order
  using Counts = SlotCounts;
  std::unordered_map<std::string, Counts> counts;      // per kind; node-based: tasks keep pointers to entries
  Counts total;
  // Per plugin (Binding::plugin, from 1): a plugin's calls, of all its kinds, hold at most a lane's share
  // of the pool, so one plugin whose calls block cannot stall the others'.
  std::vector<CallPool::Lane*> plugin_lanes;
  uint64_t next_serial = 1;  // also mirrored in issued_serials for lock-free "ended vs unknown" answers
  FinishedTasks finished;
  bool draining = false;
  bool stopped = false;
  mutable std::condition_variable_any idle;

  // Sink lookups (every th_host_api call) go through their own sharded index, not `mu`: plugin threads
  // reporting progress must not contend with admission and retirement on one lock. A task is in it from
  // its start (when its plugin first sees its ref) to its retirement, both on the pool.
  struct SerialShard {
    std::mutex mu;
    boost::unordered_flat_map<uint64_t, TaskPtr> tasks;
  };
  static constexpr size_t kSerialShards = 64;
  std::array<SerialShard, kSerialShards> serial_index;
  std::atomic<uint64_t> issued_serials{0};  // highest serial handed out
  SerialShard& shard(uint64_t serial) { return serial_index[serial % kSerialShards]; }
};

template <typename Fn>
void Router::Impl::post(const TaskPtr& t, Fn&& fn) {
  t->strand.post(t, [this, fn = std::forward<Fn>(fn)](const TaskPtr& task) mutable {
    try {
      fn(task);
    } catch (const std::exception& e) {
      fail_after_exception(task, e.what());
    } catch (...) {
      fail_after_exception(task, "an exception that is not a std::exception");
    }
    if (task->finalize_after_call) finalize_on_strand(task);
  });
}

template <typename Fill>
void Router::Impl::emit_locked(Task& t, Fill&& fill) {
  if (t.pending_event_deferred) emit_pending_locked(t);  // whatever comes first, PENDING precedes it
  const ScratchScope scratch;
  v1::TaskEvent& event = *scratch.make<v1::TaskEvent>();
  event.set_task_id(t.id);
  event.set_attempt(t.attempt);
  event.set_seq(++t.seq);
  event.set_unix_ms(unix_ms_now());
  event.set_kind(t.kind);
  event.set_worker_id(options.worker_id);
  fill(event);
  outbox.on_event(event);
}

}  // namespace taskhost::tasks
