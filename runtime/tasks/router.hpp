// The router: the one entry point transports call. Assignments, steering, cancellation and reconcile go
// in by task id and kind; events, heartbeats, checkpoints and completions come out through the
// transport's TaskOutbox.
//
//   transport ──assign──▶ Router ──kind──▶ KindRegistry ──▶ KindExecutor (generation G)
//       ▲                    │ deliver / cancel / reconcile (by task id)     │ calls serialized per task
//       └── TaskOutbox ◀── task table ◀── sink (th_host_api, any thread) ◀── plugin threads
//
// Lifecycle (protocol.md §2): pending → running ⇄ waiting_input → succeeded | failed | canceled.
// The router enforces, whatever a plugin does: terminal is final; a write from a superseded attempt is
// dropped; request_input ⇄ waiting_input; a cancel deadline after which the task ends canceled; limits
// per kind and per host (excess assignments wait as pending, in order); heartbeats for every active task
// from one timer, independent of how long a plugin call blocks.
//
// Thread rule: every public method is safe from any thread. Plugin calls run on the task's strand in the
// worker pool; only the blocking deliver/cancel/reconcile forms wait for them (bounded).
#pragma once

#include "registry/kind_registry.hpp"
#include "transport/outbox.hpp"

#include "taskhost/v1/assignment.pb.h"
#include "taskhost/v1/cancel.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <taskhost/plugin.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace taskhost::tasks {

struct RouterOptions {
  std::string worker_id = "taskhost";
  size_t max_active = 256;                             // host-wide: tasks started and not yet ended
  std::unordered_map<std::string, size_t> kind_limits; // per kind; a kind not listed has only the host limit
  std::chrono::milliseconds cancel_deadline{10'000};   // after cancel, the host ends the task canceled
  // Plugin-call pool: starts with worker_threads (0 = hardware threads - 1, at least 1) and grows up to
  // max_worker_threads (0 = 4 x hardware threads) while calls block (see tasks/call_pool.hpp).
  size_t worker_threads = 0;
  size_t max_worker_threads = 0;
  size_t finished_memory = 10'000;                     // ended tasks kept for status/duplicate checks
  // The most bytes a plugin may hand the host in one payload (a completion's output, a checkpoint, an
  // output delta, a message's data): what one task can make every status read, event stream and record
  // carry. A larger one is refused (TH_INVALID_ARGUMENT); a completion's output over it fails the task
  // "too_large". Text fields are cut at kMaxPluginText instead (host_api.cpp).
  size_t max_plugin_payload = 8u << 20;
  // A task of an isolated plugin whose process ended while the task only ran beside the crash is
  // re-attached in the next process, until this many of its plugin's processes have ended under it;
  // then it fails (error kind "plugin_crash"). 0 = no limit. ([tasks] max_plugin_crashes, which in
  // process counts the host's crashes during the task's calls.)
  uint32_t max_plugin_crashes = 2;
};

// A plugin's text (a state detail, a progress label, a prompt, an error message, ...) past this many
// bytes is cut, with a note of how much was cut: it is one line for people, not a channel for data.
inline constexpr size_t kMaxPluginText = 64u << 10;

// How a task is (re)started: fresh, or resumed after worker loss / restart / reload.
struct Resume {
  bool reattach = false;
  std::string checkpoint;
  // The highest seq the task's events have had (a host that restarted): its events continue after it,
  // since seq increases across attempts (events.proto).
  uint64_t last_seq = 0;
};

struct AssignOutcome {
  enum class Result { accepted, duplicate, rejected };
  Result result = Result::accepted;
  v1::ErrorCode code = v1::ERROR_CODE_UNSPECIFIED;  // when rejected
  std::string message;
  bool accepted() const { return result == Result::accepted; }
};

struct TaskSnapshot {
  std::string task_id;
  std::string kind;
  uint32_t attempt = 0;
  v1::TaskState state = v1::PENDING;
  std::string detail;
  uint64_t generation = 0;
  std::string plugin_version;
  std::optional<v1::Progress> progress;
  std::string pending_request_id;  // set while waiting_input
  bool cancel_requested = false;
};

// Counters for /metrics: plain values, read at one call (each exact; the set is not one instant).
struct RouterStats {
  size_t active = 0;   // pending + running + waiting_input
  size_t pending = 0;  // accepted, waiting for a slot
  size_t started = 0;  // holding a slot (started and not yet retired)
  // Calls into the plugin per kind executor of every live generation (the current ones and the older
  // ones still draining), sorted by kind, then generation.
  struct ExecutorCalls {
    std::string kind;
    uint64_t generation = 0;
    std::string plugin;  // the descriptor's plugin name
    std::string plugin_version;
    plugin::CallCounts calls;
  };
  std::vector<ExecutorCalls> executors;
  // Heartbeat lag: how late the one timer (heartbeats and cancel deadlines) ran its entries — the most
  // recent one and the largest since start. A plugin call that blocks does not add to it (the timer
  // never calls plugins); a starved host does.
  double timer_lateness_seconds = 0;
  double timer_lateness_max_seconds = 0;
};

class Router {
 public:
  Router(RouterOptions options, registry::KindRegistry& registry, transport::TaskOutbox& outbox);
  ~Router();  // shutdown() if not done
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // The sink table handed to every executor factory. Valid for the router's lifetime.
  const th_host_api& host_api() const;

  // Start a task (or answer discovery). A malformed assignment or an unknown kind is rejected with a
  // code (INVALID_INPUT, COMPONENT_NOT_FOUND) AND answered with a failed completion on the outbox.
  // An id already active is a duplicate (no-op). With resume.reattach the task starts re-attached.
  AssignOutcome assign(const v1::TaskAssignment& assignment, const Resume& resume = {});
  // The same for many fresh assignments at once, answered in order: one admission critical section and
  // one burst of starts per group of 16, for transports that receive tasks in batches (a NATS pull).
  std::vector<AssignOutcome> assign_batch(std::span<const v1::TaskAssignment> assignments);

  // Steering or an input answer, by task id. Before start it is queued and delivered at start.
  // `done` gets the receipt: at once for unknown/ended/unsupported/queued, else after the executor's
  // on_deliver returned (on the task's strand). Never called twice; may be called inline.
  using ReceiptCallback = std::function<void(const v1::DeliveryReceipt&)>;
  void deliver(const v1::SteeringMessage& message, ReceiptCallback done);
  // Cooperative cancel; a pending task ends canceled at once. `done` as for deliver.
  void cancel(const v1::CancelRequest& request, ReceiptCallback done);
  void reconcile(std::string_view task_id, ReceiptCallback done);

  // Blocking forms for callers without an event loop: wait for the receipt up to `timeout`, then answer
  // ACCEPTED with detail "delivery in progress".
  v1::DeliveryReceipt deliver(const v1::SteeringMessage& message,
                              std::chrono::milliseconds timeout = std::chrono::seconds(5));
  v1::DeliveryReceipt cancel(const v1::CancelRequest& request,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
  v1::DeliveryReceipt reconcile(std::string_view task_id,
                                std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // Free slots for `kind` right now (min of its kind limit and the host limit), for pulling transports.
  size_t free_slots(std::string_view kind) const;
  size_t active_count() const;   // pending + running + waiting_input
  // Whether a plugin serves `kind` now (nullopt: none, an assignment would be rejected), and whether it
  // can re-attach a task that ran before (a restart's recovery says which tasks wait and which end).
  struct KindService {
    bool reattach = false;
  };
  std::optional<KindService> service_of(std::string_view kind) const;
  std::optional<TaskSnapshot> snapshot(std::string_view task_id) const;
  std::vector<TaskSnapshot> snapshots() const;  // active tasks, then recently ended ones
  RouterStats stats() const;  // safe from any thread; cheap enough for a metrics scrape

  // Hot reload: move every active, re-attachable task of `kind` that runs on an older generation to the
  // kind's current generation (detach from the old one, start re-attached with attempt + 1 and the last
  // checkpoint). Each task's plugin decides (can_reattach, detach) on its strand; this waits up to
  // `decide` for those answers and returns how many tasks moved. A task whose strand was busy longer
  // still moves if it can, uncounted.
  size_t migrate(std::string_view kind, std::chrono::milliseconds decide = std::chrono::seconds(2));

  // Active tasks per generation id (tasks not started yet are not counted), for `taskhost plugins`.
  std::map<uint64_t, size_t> tasks_by_generation() const;

  // Cancels every active task running on `generation_id` (a drain deadline after a reload or removal
  // passed). Returns how many were asked.
  size_t cancel_generation(uint64_t generation_id, const std::string& reason);

  // Stop accepting assignments (they are rejected RESOURCE_UNAVAILABLE) and starting the ones waiting for
  // a slot; wait up to `grace` for the started tasks to end; cancel the rest and wait for them up to the
  // cancel deadline. Tasks that never started are then canceled too (`cancel`), or left as they are
  // (`keep`: a durable transport that still holds them queued starts them in its next run; shutdown()
  // drops them from the router without completing them).
  enum class NotStarted { cancel, keep };
  // What `grace` did not see end: canceled (`cancel`), or (`leave_reattachable`, for a durable transport
  // that re-attaches running tasks in its next run) detached from its plugin and dropped from the router
  // without completing, when its kind can re-attach it, and canceled only otherwise. A clean stop must
  // not end for good the work a crash would have kept.
  enum class Running { cancel, leave_reattachable };
  void drain(std::chrono::milliseconds grace, NotStarted not_started = NotStarted::cancel,
             Running running = Running::cancel);

  // The transport deleted these ended tasks for good (a retention period passed): the router forgets them
  // too, so each id is free for a new task instead of answered as a duplicate of the one that ended.
  // Active tasks are not touched. Any thread.
  void forget_ended(std::span<const std::string> task_ids);

  // Wait until no task is active or `timeout` passes; true when idle.
  bool wait_idle(std::chrono::milliseconds timeout) const;

  // Stops the worker pool and the timer thread and releases every active task from its executor WITHOUT
  // completing it: a durable transport still sees those tasks as running and re-attaches them when a
  // host comes back, so nothing is lost. Drain first for a clean stop. Idempotent.
  void shutdown();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskhost::tasks
