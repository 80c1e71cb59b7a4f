// Router: admission, limits, lifecycle bookkeeping, and the public entry points. Plugin calls live in
// task_calls.cpp, the sink in host_api.cpp.
#include "tasks/router.hpp"

#include "tasks/discovery.hpp"
#include "tasks/lifecycle.hpp"
#include "tasks/payload.hpp"
#include "tasks/router_impl.hpp"
#include "tasks/task_ref.hpp"
#include "transport/receipt.hpp"

#include <algorithm>
#include <future>
#include <set>
#include <thread>

namespace taskhost::tasks {

using transport::make_receipt;
namespace {

size_t hardware_threads() { return std::max<size_t>(1, std::thread::hardware_concurrency()); }

// One core is left to the transports and the API, which submit the work (see call_pool.hpp).
size_t core_pool_size(const RouterOptions& o) {
  return o.worker_threads > 0 ? o.worker_threads : std::max<size_t>(1, hardware_threads() - 1);
}

size_t max_pool_size(const RouterOptions& o) {
  return std::max(core_pool_size(o), o.max_worker_threads > 0 ? o.max_worker_threads : 4 * hardware_threads());
}

// The largest attempt an assignment may name. Attempts are compared as numbers everywhere (a stale
// attempt's writes are dropped, the newer claim wins a conflict), and each re-attach counts one more, so
// an attempt near the top of uint32 would wrap to 0 on its next re-attach and then lose to its own past.
constexpr uint32_t kMaxAttempt = 0x7FFF'FFFF;

}  // namespace

// =====================================================================================================
// Impl: admission and bookkeeping
// =====================================================================================================

Router::Impl::Impl(RouterOptions opts, registry::KindRegistry& reg, transport::TaskOutbox& out)
    : options(std::move(opts)),
      registry(reg),
      outbox(out),
      own_scope{reinterpret_cast<th_host_context*>(this), 0, {}, host_hooks()},
      api(make_host_api(this)),
      pool(core_pool_size(options), max_pool_size(options)),
      finished(options.finished_memory) {}

AssignOutcome Router::Impl::reject(const v1::TaskAssignment& a, const std::string& kind, v1::ErrorCode code,
                                   std::string message) {
  // The sender gets the answer twice on purpose: synchronously, and as the task's one completion on the
  // outbox, which is how an orchestrator on a queue learns of it (COMPONENT_NOT_FOUND is never retried).
  v1::TaskCompletion c;
  c.set_task_id(a.task_id());
  c.set_attempt(a.has_execute() ? std::max<uint32_t>(1, a.execute().attempt()) : 1);
  c.set_state(v1::FAILED);
  c.set_worker_id(options.worker_id);
  c.set_kind(kind);
  c.set_unix_ms(unix_ms_now());
  auto* err = c.mutable_error();
  err->set_code(code);
  err->set_message(message);
  err->set_kind("rejected");
  if (!a.task_id().empty()) outbox.on_completion(c);
  return AssignOutcome{AssignOutcome::Result::rejected, code, std::move(message)};
}

void Router::Impl::answer_discovery(const v1::TaskAssignment& a) {
  outbox.on_completion(discovery_answer(registry, options.worker_id, a.task_id()));
}

std::optional<AssignOutcome> Router::Impl::prepare(const v1::TaskAssignment& a, const Resume& resume, Candidate& c) {
  if (a.task_id().empty()) {
    return reject(a, {}, v1::INVALID_INPUT, "malformed assignment: field 'task_id' is empty");
  }
  if (a.has_list_components()) {
    answer_discovery(a);
    return AssignOutcome{};
  }
  if (!a.has_execute()) {
    return reject(a, {}, v1::INVALID_INPUT,
                  "malformed assignment for task '" + a.task_id() + "': neither 'execute' nor 'list_components' is set");
  }
  const std::string& kind = a.execute().component_id();
  if (kind.empty()) {
    return reject(a, kind, v1::INVALID_INPUT,
                  "malformed assignment for task '" + a.task_id() + "': field 'execute.component_id' (the kind) is empty");
  }
  if (a.execute().attempt() > kMaxAttempt) {
    return reject(a, kind, v1::INVALID_INPUT,
                  "malformed assignment for task '" + a.task_id() + "': field 'execute.attempt' is " +
                      std::to_string(a.execute().attempt()) + ", more than " + std::to_string(kMaxAttempt));
  }
  const std::optional<registry::KindAdmission> admission = registry.admission_of(kind);
  if (!admission) {
    return reject(a, kind, v1::COMPONENT_NOT_FOUND, "no plugin serves kind '" + kind + "' (task '" + a.task_id() + "')");
  }
  c.assignment = &a;
  c.resume = &resume;
  c.attempt = std::max<uint32_t>(1, a.execute().attempt());
  // Encoded here, outside every lock, for the encoding the kind has now: the start almost always finds
  // the same generation, and the task then keeps bytes instead of a copy of the Value tree.
  c.encoding = admission->encoding;
  c.plugin = admission->plugin;
  c.encoded = encode_value(a.execute().input(), c.encoding, &c.lossy);
  // Its PENDING event is owed from birth: once the task is in the maps another thread can start it (a
  // retirement admitting it) or end it (a cancel), and whichever event comes first emits PENDING
  // before itself (emit_locked). So no lock of the task is held across admission, and `mu` is always
  // taken before a task's lock, never after.
  c.task = std::make_shared<Task>(a.task_id(), kind, pool);
  c.task->pending_event_deferred = true;  // no other thread can reach it yet
  c.task->seq = resume.last_seq;
  return std::nullopt;
}

void Router::Impl::admit(std::span<Candidate> candidates) {
  Admitted admitted;
  {
    std::lock_guard lock(mu);
    for (Candidate& c : candidates) {
      if (!c.task) continue;
      const v1::TaskAssignment& a = *c.assignment;
      if (stopped || draining) {
        c.outcome = AssignOutcome{AssignOutcome::Result::rejected, v1::RESOURCE_UNAVAILABLE,
                                  "host is draining: task '" + a.task_id() + "' not accepted"};
        continue;
      }
      if (by_id.count(a.task_id())) {
        c.outcome = AssignOutcome{AssignOutcome::Result::duplicate, v1::ERROR_CODE_UNSPECIFIED,
                                  "task '" + a.task_id() + "' is already active on this host"};
        continue;
      }
      if (const auto* done = finished.find(a.task_id()); done && done->attempt >= c.attempt && !c.resume->reattach) {
        c.outcome = AssignOutcome{AssignOutcome::Result::duplicate, v1::ERROR_CODE_UNSPECIFIED,
                                  "task '" + a.task_id() + "' attempt " + std::to_string(c.attempt) + " already ended (" +
                                      std::string(state_name(done->state)) + ")"};
        continue;
      }
      Task& t = *c.task;
      t.serial = next_serial++;
      issued_serials.store(t.serial, std::memory_order_release);
      t.encoded_input = std::move(c.encoded);
      t.input_encoding = c.encoding;
      if (c.lossy) t.exact_input = std::make_unique<google::protobuf::Value>(a.execute().input());
      t.heartbeat_interval = std::chrono::seconds(a.heartbeat_interval_secs());
      t.attempt = c.attempt;
      t.reattach = c.resume->reattach;
      t.checkpoint = c.resume->checkpoint;
      by_id.emplace(t.id, c.task);  // the serial index gets it at its start, when the plugin learns its ref
      pending.push_back(c.task);
      t.waiting_for_slot = true;
      t.kind_counts = &counts_locked(t.kind);
      t.strand.set_lane(plugin_lane_locked(c.plugin));  // before its first call is posted (launch)
      ++t.kind_counts->pending;
      ++total.pending;
      c.in_maps = true;
    }
    collect_admissions_locked(admitted);  // in the same critical section: usually admits them at once
    if (!pending.empty()) {  // some wait for a slot: their PENDING event says which limit holds them
      for (Candidate& c : candidates) {
        if (c.in_maps && std::find(admitted.begin(), admitted.end(), c.task) == admitted.end()) {
          c.queued = queued_reason_locked(*c.task);
        }
      }
    }
  }
  for (Candidate& c : candidates) {
    if (!c.task) continue;
    // Announced here, on the admitting thread, unless an event of the task was emitted already (which
    // emitted PENDING first). Emitting it on the pool just before RUNNING instead was measured too: it
    // helped while the submitting thread was the busier one, and cost 0.06-0.08x in bench_e2e once the
    // pool thread was (the plugin's own work is on the pool, so that is the usual case).
    if (c.in_maps) {
      std::lock_guard tl(c.task->mu);
      if (c.task->pending_event_deferred) emit_pending_locked(*c.task, std::move(c.queued));
    }
    if (c.outcome.result == AssignOutcome::Result::rejected) {
      c.outcome = reject(*c.assignment, c.task->kind, c.outcome.code, std::move(c.outcome.message));
    }
  }
  launch(admitted);
}

AssignOutcome Router::Impl::assign(const v1::TaskAssignment& a, const Resume& resume) {
  Candidate c;
  if (auto answered = prepare(a, resume, c)) return std::move(*answered);
  admit(std::span<Candidate>(&c, 1));
  return std::move(c.outcome);
}

std::vector<AssignOutcome> Router::Impl::assign_batch(std::span<const v1::TaskAssignment> batch) {
  // Admitted in groups of 16: one critical section and one burst of starts per group, while the router's
  // lock is never held for a whole large batch (the pool's retirements wait on it). (Groups once also
  // bounded the task locks held at once; admission holds none now.)
  constexpr size_t kGroup = 16;
  static const Resume fresh;
  std::vector<AssignOutcome> out(batch.size());
  std::vector<Candidate> candidates;
  for (size_t start = 0; start < batch.size(); start += kGroup) {
    const size_t n = std::min(kGroup, batch.size() - start);
    candidates.clear();
    candidates.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (auto answered = prepare(batch[start + i], fresh, candidates[i])) out[start + i] = std::move(*answered);
    }
    admit(candidates);
    for (size_t i = 0; i < n; ++i) {
      if (candidates[i].task) out[start + i] = std::move(candidates[i].outcome);
    }
  }
  return out;
}

size_t Router::Impl::kind_limit(const std::string& kind) const {
  auto it = options.kind_limits.find(kind);
  return it == options.kind_limits.end() ? options.max_active : it->second;
}

Router::Impl::Counts& Router::Impl::counts_locked(const std::string& kind) {
  auto [it, made] = counts.try_emplace(kind);
  if (made) it->second.limit = kind_limit(kind);
  return it->second;
}

CallPool::Lane* Router::Impl::plugin_lane_locked(uint32_t plugin) {
  if (plugin >= plugin_lanes.size()) plugin_lanes.resize(plugin + 1, nullptr);
  CallPool::Lane*& lane = plugin_lanes[plugin];
  if (lane == nullptr) lane = pool.make_lane();
  return lane;
}

size_t Router::Impl::free_slots_locked(const std::string& kind) const {
  auto it = counts.find(kind);
  const Counts c = it == counts.end() ? Counts{} : it->second;
  const size_t kind_used = c.pending + c.started;
  const size_t host_used = total.pending + total.started;
  const size_t lim = kind_limit(kind);
  const size_t kind_free = kind_used >= lim ? 0 : lim - kind_used;
  const size_t host_free = host_used >= options.max_active ? 0 : options.max_active - host_used;
  return std::min(kind_free, host_free);
}

void Router::Impl::collect_admissions_locked(Admitted& admitted) {
  if (stopped || draining) return;  // a draining host finishes what runs; it starts nothing new
  for (auto it = pending.begin(); it != pending.end() && total.started < options.max_active;) {
    Counts& c = *(*it)->kind_counts;
    if (c.started >= c.limit) {
      ++it;  // this kind is full; later tasks of other kinds may still start (no head-of-line blocking)
      continue;
    }
    --c.pending;
    ++c.started;
    --total.pending;
    ++total.started;
    (*it)->waiting_for_slot = false;
    admitted.push_back(*it);
    it = pending.erase(it);
  }
}

void Router::Impl::launch(const Admitted& admitted) {
  for (const auto& t : admitted) {
    // Queued while the task's lock is held: a cancel or a steering message that sees `started` is then
    // queued behind the start, never ahead of it (ahead, a cancel found no executor yet and was refused,
    // and the task ran on until the cancel deadline). Posting only queues; it never runs the call here.
    std::lock_guard tl(t->mu);
    t->started = true;
    post(t, [this](const TaskPtr& task) { start_on_strand(task); });
  }
}

TaskPtr Router::Impl::find_active(std::string_view id) const {
  std::lock_guard lock(mu);
  auto it = by_id.find(id);
  return it == by_id.end() ? nullptr : it->second;
}

v1::DeliveryReceipt Router::Impl::receipt_for_missing(std::string_view task_id, std::string_view message_id) const {
  std::lock_guard lock(mu);
  if (const auto* done = finished.find(task_id)) {
    return make_receipt(task_id, message_id, v1::DeliveryReceipt::TASK_ENDED,
                        "task '" + std::string(task_id) + "' already ended (" + std::string(state_name(done->state)) + ")");
  }
  return make_receipt(task_id, message_id, v1::DeliveryReceipt::UNKNOWN_TASK,
                      "unknown task '" + std::string(task_id) + "'");
}

TaskSnapshot Router::Impl::snapshot_locked(const Task& t) const {
  TaskSnapshot s;
  fill_snapshot_locked(t, s);
  return s;
}

void Router::Impl::fill_snapshot_locked(const Task& t, TaskSnapshot& s) const {
  s.task_id = t.id;
  s.kind = t.kind;
  s.attempt = t.attempt;
  s.state = t.state;
  s.detail = t.detail;
  s.generation = t.generation_id;
  s.plugin_version = t.plugin_version;
  s.progress = t.progress;
  s.pending_request_id = t.pending_request_id;
  s.cancel_requested = t.cancel_requested;
}

void Router::Impl::retire(const TaskPtr& t, bool held_slot) {
  {
    SerialShard& sh = shard(t->serial);
    std::lock_guard shard_lock(sh.mu);
    sh.tasks.erase(t->serial);
  }
  Admitted admitted;
  std::vector<v1::SteeringMessage> never_delivered;  // steering that waited for a start that never came
  std::vector<v1::SteeringMessage> never_asked;      // answers that waited for a question that never came
  {
    // One critical section retires the task and admits its successors.
    std::lock_guard lock(mu);
    auto it = by_id.find(t->id);
    if (it != by_id.end() && it->second == t) by_id.erase(it);
    Counts& c = t->kind_counts ? *t->kind_counts : counts_locked(t->kind);
    if (held_slot) {
      --c.started;
      --total.started;
    } else if (auto p = std::find(pending.begin(), pending.end(), t); p != pending.end()) {
      t->waiting_for_slot = false;
      pending.erase(p);
      --c.pending;
      --total.pending;
    }
    {
      // Written straight into its slot of the ended-task memory (`mu`, then the task's lock).
      std::lock_guard tl(t->mu);
      finished.put(t->id, [&](TaskSnapshot& s) { fill_snapshot_locked(*t, s); });
      never_delivered.swap(t->queued);
      never_asked.swap(t->held_answers);
    }
    collect_admissions_locked(admitted);
    // Waiters: wait_idle (nothing active) and drain (nothing started: only checked while draining, so
    // the usual path pays no notify for it).
    if (by_id.empty() || (draining && total.started == 0)) idle.notify_all();
  }
  // Their senders learn the final outcome.
  for (const auto& m : never_delivered) {
    outbox.on_delivery(make_receipt(t->id, m.message_id(), v1::DeliveryReceipt::TASK_ENDED,
                                    "task '" + t->id +
                                        (held_slot ? "' ended before its next attempt started (the message was held "
                                                     "for it); the message was not delivered"
                                                   : "' ended before it started; the message was not delivered")));
  }
  for (const auto& m : never_asked) {
    outbox.on_delivery(make_receipt(t->id, m.message_id(), v1::DeliveryReceipt::TASK_ENDED,
                                    "task '" + t->id + "' ended without asking for input '" + m.in_reply_to() +
                                        "'; the answer was not delivered"));
  }
  outbox.on_capacity(t->kind);
  launch(admitted);
}

// =====================================================================================================
// Impl: lifecycle
// =====================================================================================================

void Router::Impl::emit_pending_locked(Task& t, std::string queued) {
  t.pending_event_deferred = false;
  if (!queued.empty()) t.detail = queued;  // (not stored on the usual path: the event says "accepted")
  emit_locked(t, [&](v1::TaskEvent& e) {
    e.mutable_state()->set_state(v1::PENDING);
    if (queued.empty()) {
      e.mutable_state()->set_detail(t.reattach ? "accepted for re-attach" : "accepted");
    } else {
      e.mutable_state()->set_detail(std::move(queued));
    }
  });
}

std::string Router::Impl::queued_reason_locked(const Task& t) const {
  const std::string what = t.reattach ? "accepted for re-attach; queued: " : "accepted; queued: ";
  if (t.kind_counts != nullptr && t.kind_counts->started >= t.kind_counts->limit && options.kind_limits.count(t.kind)) {
    return what + "kind '" + t.kind + "' has its limit of " + std::to_string(t.kind_counts->limit) +
           " tasks running ([limits.kinds])";
  }
  if (total.started >= options.max_active) {
    return what + "the host has its limit of " + std::to_string(options.max_active) +
           " tasks running ([limits] max_active)";
  }
  return what + "behind " + std::to_string(total.pending - 1) + " earlier task(s) waiting for a slot";
}

bool Router::Impl::set_state_locked(Task& t, v1::TaskState state, std::string detail) {
  if (t.ended || !transition_allowed(t.state, state)) return false;
  if (t.state == state && t.detail == detail) return true;
  t.state = state;
  t.detail = detail;
  emit_locked(t, [&](v1::TaskEvent& e) {
    e.mutable_state()->set_state(state);
    e.mutable_state()->set_detail(std::move(detail));
  });
  return true;
}

void Router::Impl::completion_locked(const Task& t, v1::TaskState state, v1::TaskCompletion& c) const {
  c.set_task_id(t.id);
  c.set_attempt(t.attempt);
  c.set_state(state);
  c.set_worker_id(options.worker_id);
  c.set_kind(t.kind);
  c.set_generation(t.generation_id);
  c.set_plugin_version(t.plugin_version);
  c.set_unix_ms(unix_ms_now());
}

bool Router::Impl::end_locked(Task& t, const v1::TaskCompletion& completion) {
  if (t.ended) return false;  // the first completion wins
  if (completion.state() == v1::CANCELED && !t.shutdown_reason.empty() &&
      completion.error().message().find(t.shutdown_reason) == std::string::npos) {
    // Canceled because this host drains: the end says so, after whatever the plugin said.
    v1::TaskCompletion named = completion;
    const std::string& said = completion.error().message();
    named.mutable_error()->set_message(said.empty() ? t.shutdown_reason : said + " (" + t.shutdown_reason + ")");
    t.shutdown_reason.clear();
    return end_locked(t, named);
  }
  // Answers still waiting for their question are not silently dropped: the task's own events say so.
  for (const auto& m : t.held_answers) {
    emit_locked(t, [&](v1::TaskEvent& e) {
      e.mutable_state()->set_state(t.state);
      // A re-attached attempt may be handed an answer its predecessor took after its last recorded
      // mark (the attempt resumed past the question, so it never asks): say so rather than "lost".
      e.mutable_state()->set_detail("message '" + m.message_id() + "' answers input '" + m.in_reply_to() +
                                    "', which the task did not ask for: not delivered" +
                                    (t.attempt > 1 ? " to attempt " + std::to_string(t.attempt) +
                                                         " (an earlier attempt may have taken it)"
                                                   : std::string()));
    });
  }
  t.ended = true;
  t.state = completion.state();
  t.detail = completion.has_error() ? completion.error().message() : std::string(state_name(t.state));
  t.pending_request_id.clear();
  t.pending_prompt.clear();
  emit_locked(t, [&](v1::TaskEvent& e) {
    e.mutable_state()->set_state(t.state);
    e.mutable_state()->set_detail(t.detail);
  });
  outbox.on_completion(completion);
  return true;
}

bool Router::Impl::fail_locked(Task& t, v1::ErrorCode code, std::string message, std::string error_kind) {
  const ScratchScope scratch;
  v1::TaskCompletion& c = *scratch.make<v1::TaskCompletion>();
  completion_locked(t, code == v1::CANCELLED ? v1::CANCELED : v1::FAILED, c);
  auto* err = c.mutable_error();
  err->set_code(code);
  err->set_message(std::move(message));
  err->set_kind(std::move(error_kind));
  return end_locked(t, c);
}

void Router::Impl::schedule_heartbeat(const TaskPtr& t, uint32_t attempt, Scheduler::Clock::time_point due) {
  if (t->heartbeat_interval.count() <= 0) return;
  std::weak_ptr<Task> weak = t;
  scheduler.schedule(due, [this, weak, attempt, due] {
    auto task = weak.lock();
    if (!task) return;
    {
      std::lock_guard tl(task->mu);
      if (task->ended || task->attempt != attempt) return;  // the beat of an ended or superseded attempt stops
      v1::Heartbeat hb;
      hb.set_task_id(task->id);
      hb.set_worker_id(options.worker_id);
      hb.set_attempt(attempt);
      if (task->beat_fraction) {
        hb.set_progress(*task->beat_fraction);
      } else if (task->progress && task->progress->total() > 0) {
        hb.set_progress(std::clamp(task->progress->current() / task->progress->total(), 0.0, 1.0));
      }
      if (!task->beat_message.empty()) hb.set_status_message(task->beat_message);
      outbox.on_heartbeat(hb);
    }
    // Next beat at a fixed cadence from the previous due time, so lag does not accumulate.
    auto next = due + task->heartbeat_interval;
    const auto now = Scheduler::Clock::now();
    if (next < now) next = now;
    schedule_heartbeat(task, attempt, next);
  });
}

void Router::Impl::schedule_cancel_deadline(const TaskPtr& t, uint32_t attempt) {
  std::weak_ptr<Task> weak = t;
  const auto deadline = options.cancel_deadline;
  scheduler.schedule(Scheduler::Clock::now() + deadline, [this, weak, attempt, deadline] {
    auto task = weak.lock();
    if (!task) return;
    {
      std::lock_guard tl(task->mu);
      if (task->ended || task->attempt != attempt) return;
      // Decided here, on the timer thread, so a plugin stuck inside a call cannot keep the task alive;
      // on_release follows on the strand once that call returns.
      fail_locked(*task, v1::CANCELLED,
                  "task '" + task->id + "' did not wind down within " + std::to_string(deadline.count()) +
                      " ms of the cancel request; ended by the host",
                  "deadline");
    }
    post(task, [this](const TaskPtr& ended) { finalize_on_strand(ended); });
  });
}

// =====================================================================================================
// Router: public entry points
// =====================================================================================================

Router::Router(RouterOptions options, registry::KindRegistry& registry, transport::TaskOutbox& outbox)
    : impl_(std::make_unique<Impl>(std::move(options), registry, outbox)) {}

Router::~Router() { shutdown(); }

const th_host_api& Router::host_api() const { return impl_->api; }

AssignOutcome Router::assign(const v1::TaskAssignment& assignment, const Resume& resume) {
  return impl_->assign(assignment, resume);
}

std::vector<AssignOutcome> Router::assign_batch(std::span<const v1::TaskAssignment> assignments) {
  return impl_->assign_batch(assignments);
}

void Router::deliver(const v1::SteeringMessage& message, ReceiptCallback done) {
  auto t = impl_->find_active(message.task_id());
  if (!t) return done(impl_->receipt_for_missing(message.task_id(), message.message_id()));
  {
    std::lock_guard tl(t->mu);
    if (t->ended) {
      return done(make_receipt(t->id, message.message_id(), v1::DeliveryReceipt::TASK_ENDED,
                               "task '" + t->id + "' already ended (" + std::string(state_name(t->state)) + ")"));
    }
    if (!t->started) {
      t->queued.push_back(message);
      v1::DeliveryReceipt queued = make_receipt(t->id, message.message_id(), v1::DeliveryReceipt::ACCEPTED,
                                                "queued: delivered when the task starts");
      queued.set_queued(true);
      return done(queued);
    }
  }
  impl_->post(t, [impl = impl_.get(), message, done = std::move(done)](const TaskPtr& task) mutable {
    impl->deliver_on_strand(task, std::move(message), std::move(done));
  });
}

void Router::cancel(const v1::CancelRequest& request, ReceiptCallback done) {
  auto t = impl_->find_active(request.task_id());
  if (!t) return done(impl_->receipt_for_missing(request.task_id(), {}));
  impl_->request_cancel(t, request, std::move(done));
}

void Router::Impl::request_cancel(const TaskPtr& t, const v1::CancelRequest& request, ReceiptCallback done) {
  bool was_pending = false;
  bool was_awaiting = false;
  {
    std::lock_guard tl(t->mu);
    if (t->ended) {
      return done(make_receipt(t->id, {}, v1::DeliveryReceipt::TASK_ENDED,
                               "task '" + t->id + "' already ended (" + std::string(state_name(t->state)) + ")"));
    }
    if (request.attempt() != 0 && request.attempt() != t->attempt) {
      return done(make_receipt(t->id, {}, v1::DeliveryReceipt::REJECTED,
                               "cancel names attempt " + std::to_string(request.attempt()) + " but task '" + t->id +
                                   "' is at attempt " + std::to_string(t->attempt)));
    }
    if (t->cancel_requested) {
      return done(make_receipt(t->id, {}, v1::DeliveryReceipt::ACCEPTED, "cancel already requested"));
    }
    t->cancel_requested = true;
    if (!t->started) {
      was_pending = true;
      fail_locked(*t, v1::CANCELLED,
                  request.reason().empty() ? "canceled before start" : "canceled before start: " + request.reason());
    } else if (t->awaiting_process) {
      // No process runs it to wind it down, and nobody wants it re-attached: it ends now.
      was_awaiting = true;
      fail_locked(*t, v1::CANCELLED,
                  "task '" + t->id + "' was canceled while its plugin process was down" +
                      (request.reason().empty() ? std::string() : ": " + request.reason()));
    } else {
      schedule_cancel_deadline(t, t->attempt);
    }
  }
  if (was_pending) {
    retire(t, /*held_slot=*/false);
    return done(make_receipt(t->id, {}, v1::DeliveryReceipt::ACCEPTED, "canceled before start"));
  }
  if (was_awaiting) {
    post(t, [this](const TaskPtr& ended) { finalize_on_strand(ended); });
    return done(make_receipt(t->id, {}, v1::DeliveryReceipt::ACCEPTED, "canceled while its plugin process was down"));
  }
  post(t, [this, request, done = std::move(done)](const TaskPtr& task) mutable {
    cancel_on_strand(task, std::move(request), std::move(done));
  });
}

void Router::reconcile(std::string_view task_id, ReceiptCallback done) {
  auto t = impl_->find_active(task_id);
  if (!t) return done(impl_->receipt_for_missing(task_id, {}));
  impl_->post(t, [impl = impl_.get(), done = std::move(done)](const TaskPtr& task) mutable {
    impl->reconcile_on_strand(task, std::move(done));
  });
}

namespace {
template <typename Start>
v1::DeliveryReceipt wait_receipt(std::string_view task_id, std::string_view message_id,
                                 std::chrono::milliseconds timeout, Start&& start) {
  auto promise = std::make_shared<std::promise<v1::DeliveryReceipt>>();
  auto future = promise->get_future();
  start([promise](const v1::DeliveryReceipt& r) { promise->set_value(r); });
  if (future.wait_for(timeout) == std::future_status::ready) return future.get();
  return make_receipt(task_id, message_id, v1::DeliveryReceipt::ACCEPTED, "delivery in progress");
}
}  // namespace

v1::DeliveryReceipt Router::deliver(const v1::SteeringMessage& message, std::chrono::milliseconds timeout) {
  return wait_receipt(message.task_id(), message.message_id(), timeout,
                      [&](ReceiptCallback cb) { deliver(message, std::move(cb)); });
}

v1::DeliveryReceipt Router::cancel(const v1::CancelRequest& request, std::chrono::milliseconds timeout) {
  return wait_receipt(request.task_id(), {}, timeout, [&](ReceiptCallback cb) { cancel(request, std::move(cb)); });
}

v1::DeliveryReceipt Router::reconcile(std::string_view task_id, std::chrono::milliseconds timeout) {
  return wait_receipt(task_id, {}, timeout, [&](ReceiptCallback cb) { reconcile(task_id, std::move(cb)); });
}

size_t Router::free_slots(std::string_view kind) const {
  std::lock_guard lock(impl_->mu);
  if (impl_->stopped || impl_->draining) return 0;
  return impl_->free_slots_locked(std::string(kind));
}

size_t Router::active_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->by_id.size();
}

std::optional<Router::KindService> Router::service_of(std::string_view kind) const {
  const registry::Binding b = impl_->registry.resolve(kind);
  if (!b) return std::nullopt;
  return KindService{b.executor->supports_reattach()};
}

std::optional<TaskSnapshot> Router::snapshot(std::string_view task_id) const {
  TaskPtr t;
  std::string queued;
  {
    std::lock_guard lock(impl_->mu);
    const auto it = impl_->by_id.find(task_id);
    if (it == impl_->by_id.end()) {
      if (const auto* done = impl_->finished.find(task_id)) return *done;
      return std::nullopt;
    }
    t = it->second;
    // A task still waiting for a slot says which limit holds it now: the reason its PENDING event gave
    // may have changed since (a host limit that freed up, behind which its kind's limit now holds it).
    if (t->waiting_for_slot) queued = impl_->queued_reason_locked(*t);
  }
  std::lock_guard tl(t->mu);
  TaskSnapshot s = impl_->snapshot_locked(*t);
  if (!queued.empty() && s.state == v1::PENDING && !t->started) s.detail = std::move(queued);
  return s;
}

void Router::forget_ended(std::span<const std::string> task_ids) {
  std::lock_guard lock(impl_->mu);
  for (const auto& id : task_ids) impl_->finished.forget(id);
}

std::vector<TaskSnapshot> Router::snapshots() const {
  std::vector<TaskPtr> active;
  std::vector<TaskSnapshot> out;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, t] : impl_->by_id) active.push_back(t);
    impl_->finished.for_each([&](const TaskSnapshot& s) { out.push_back(s); });
  }
  std::vector<TaskSnapshot> result;
  result.reserve(active.size() + out.size());
  for (const auto& t : active) {
    std::lock_guard tl(t->mu);
    result.push_back(impl_->snapshot_locked(*t));
  }
  std::sort(result.begin(), result.end(), [](const auto& a, const auto& b) { return a.task_id < b.task_id; });
  result.insert(result.end(), out.begin(), out.end());
  return result;
}

RouterStats Router::stats() const {
  RouterStats s;
  {
    std::lock_guard lock(impl_->mu);
    s.active = impl_->by_id.size();
    s.pending = impl_->total.pending;
    s.started = impl_->total.started;
  }
  std::set<const plugin::Generation*> seen;  // a generation may be listed under its file more than once
  for (const auto& file : impl_->registry.files()) {
    std::vector<registry::GenerationPtr> gens = file.draining;
    if (file.current) gens.push_back(file.current);
    for (const auto& g : gens) {
      if (!g || !seen.insert(g.get()).second) continue;
      for (const auto& e : g->executors()) s.executors.push_back({e->kind(), g->id(), g->name(), g->version(), e->calls()});
    }
  }
  std::sort(s.executors.begin(), s.executors.end(), [](const auto& a, const auto& b) {
    return a.kind != b.kind ? a.kind < b.kind : a.generation < b.generation;
  });
  const auto late = impl_->scheduler.lateness();
  s.timer_lateness_seconds = std::chrono::duration<double>(late.last).count();
  s.timer_lateness_max_seconds = std::chrono::duration<double>(late.max).count();
  return s;
}

size_t Router::migrate(std::string_view kind, std::chrono::milliseconds decide) {
  const auto current = impl_->registry.resolve(kind);
  if (!current) return 0;
  std::vector<TaskPtr> candidates;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, t] : impl_->by_id) {
      if (t->kind == kind) candidates.push_back(t);
    }
  }
  // The answers of the tasks' strands (shared: a strand may answer after this returned).
  struct Tally {
    std::mutex mu;
    std::condition_variable cv;
    size_t asked = 0, answered = 0, moved = 0;
  };
  auto tally = std::make_shared<Tally>();
  for (const auto& t : candidates) {
    {
      std::lock_guard tl(t->mu);
      if (t->ended || !t->started || !t->binding || t->binding.generation == current.generation) continue;
      if (!t->binding.executor->supports_reattach()) continue;
    }
    {
      std::lock_guard lock(tally->mu);
      ++tally->asked;
    }
    impl_->post(t, [impl = impl_.get(), tally](const TaskPtr& task) {
      const bool moved = impl->migrate_on_strand(task);
      std::lock_guard lock(tally->mu);
      ++tally->answered;
      if (moved) ++tally->moved;
      tally->cv.notify_all();
    });
  }
  std::unique_lock lock(tally->mu);
  tally->cv.wait_for(lock, decide, [&] { return tally->answered == tally->asked; });
  return tally->moved;
}

std::map<uint64_t, size_t> Router::tasks_by_generation() const {
  std::vector<TaskPtr> active;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, t] : impl_->by_id) active.push_back(t);
  }
  std::map<uint64_t, size_t> counts;
  for (const auto& t : active) {
    std::lock_guard tl(t->mu);
    if (!t->ended && t->generation_id != 0) ++counts[t->generation_id];
  }
  return counts;
}

size_t Router::cancel_generation(uint64_t generation_id, const std::string& reason) {
  std::vector<std::string> ids;
  {
    std::vector<TaskPtr> active;
    {
      std::lock_guard lock(impl_->mu);
      for (const auto& [id, t] : impl_->by_id) active.push_back(t);
    }
    for (const auto& t : active) {
      std::lock_guard tl(t->mu);
      if (!t->ended && t->generation_id == generation_id) ids.push_back(t->id);
    }
  }
  for (const auto& id : ids) {
    v1::CancelRequest req;
    req.set_task_id(id);
    req.set_reason(reason);
    cancel(req, [](const v1::DeliveryReceipt&) {});
  }
  return ids.size();
}

void Router::drain(std::chrono::milliseconds grace, NotStarted not_started, Running running) {
  auto none_started = [&] { return impl_->total.started == 0; };
  {
    std::unique_lock lock(impl_->mu);
    impl_->draining = true;  // from here nothing waiting for a slot starts (collect_admissions_locked)
    impl_->idle.wait_for(lock, grace, none_started);
  }
  // Cancel (or leave) what still runs, and (unless kept) cancel what never started: a pending task ends
  // at once.
  std::vector<std::string> ids;
  std::vector<TaskPtr> left;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, t] : impl_->by_id) {
      std::lock_guard tl(t->mu);
      if (t->started && running == Running::leave_reattachable) {
        left.push_back(t);
      } else if (t->started || not_started == NotStarted::cancel) {
        if (!t->cancel_requested) t->shutdown_reason = impl_->shutting_down();
        ids.emplace_back(id);
      }
    }
  }
  for (const auto& t : left) impl_->post(t, [this](const TaskPtr& task) { impl_->leave_for_next_run_on_strand(task); });
  for (const auto& id : ids) {
    v1::CancelRequest req;
    req.set_task_id(id);
    req.set_reason(impl_->shutting_down());
    cancel(req, [](const v1::DeliveryReceipt&) {});
  }
  std::unique_lock lock(impl_->mu);
  impl_->idle.wait_for(lock, impl_->options.cancel_deadline + std::chrono::seconds(1), none_started);
}

bool Router::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  return impl_->idle.wait_for(lock, timeout, [&] { return impl_->by_id.empty(); });
}

void Router::shutdown() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  impl_->scheduler.stop();
  impl_->pool.stop();  // queued calls are dropped; a call in flight finishes first
  // The pool is gone, so nothing else calls plugins now: release every started task here, on this
  // (host) thread, without completing it — see the header for why.
  std::vector<TaskPtr> active;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, t] : impl_->by_id) active.push_back(t);
  }
  for (const auto& t : active) {
    registry::Binding binding;
    plugin::TaskCall call;
    {
      std::lock_guard tl(t->mu);
      if (t->released) continue;
      t->released = true;
      t->ended = true;  // late sink calls are answered TASK_ENDED, and nothing is published any more
      binding = std::move(t->binding);
      call.task = make_task_ref(t->serial, t->attempt);
    }
    if (binding) {
      call.task_id = t->id.c_str();
      call.kind = t->kind.c_str();
      binding.executor->release(call);
    }
  }
  std::lock_guard lock(impl_->mu);
  impl_->by_id.clear();
  for (auto& sh : impl_->serial_index) {
    std::lock_guard shard_lock(sh.mu);
    sh.tasks.clear();
  }
  impl_->pending.clear();
  impl_->idle.notify_all();
}

}  // namespace taskhost::tasks
