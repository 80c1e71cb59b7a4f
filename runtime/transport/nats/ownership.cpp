// Task ownership records in the KV bucket: written by compare-and-set, one write in flight per task
// (later changes coalesce into the next write), deleted once the completion is stored. A lost
// compare-and-set means someone else wrote the record: resolve_conflict() finds out who, and either takes
// the record over (a queued record from a client, a dead or earlier owner) or fences this attempt.
#include "common/log.hpp"
#include "common/unix_time.hpp"
#include "transport/nats/transport_impl.hpp"

namespace taskhost::transport::nats {

TaskRecord NatsTransport::Impl::record_of(const Inflight& f) const {
  TaskRecord r;
  r.task_id = f.task_id;
  r.kind = f.kind;
  r.owner = options.worker_id;
  r.attempt = f.attempt;
  r.state = v1::RUNNING;
  r.assignment = f.assignment;
  r.checkpoint = f.checkpoint;
  r.control = f.checkpoint_control;
  r.ack_on_completion = options.ack_mode == AckMode::on_completion;
  r.created_unix_ms = f.created_unix_ms;
  r.updated_unix_ms = unix_ms_now();
  return r;
}

void NatsTransport::Impl::write_record_locked(Inflight& f) {
  if (f.record_unwritable) return;  // over max_payload once: every later write would be too (logged once)
  // A host that may have been declared dead writes nothing until check_ownership() has looked at the
  // task: a write to a record deleted because the task finished elsewhere would create it again. Two
  // atomic loads and a clock read; the write itself is unchanged.
  if (!may_write()) {
    f.record_dirty = true;  // tick() writes it once the gate opens (unless the task was fenced)
    return;
  }
  if (f.record_busy) {
    f.record_dirty = true;
    return;
  }
  f.record_busy = true;
  f.record_dirty = false;
  const std::string id = f.task_id;
  publisher->publish(names.kv_subject(Names::task_key(id)), encode_record(record_of(f)), {}, {},
                     Expect::subject_at(f.record_rev),
                     [this, id](const PublishResult& r) { record_written(id, r); });
}

void NatsTransport::Impl::delete_record_locked(Inflight& f) {
  f.record_busy = true;
  const std::string id = f.task_id;
  publisher->publish(names.kv_subject(Names::task_key(id)), {}, {{"KV-Operation", "DEL"}}, {},
                     Expect::subject_at(f.record_rev), [this, id](const PublishResult& r) {
                       // The marker goes too (RecordStore::compact), off the cnats thread: it is a request.
                       if (r.stored && worker) {
                         worker->post([this, id, seq = r.seq] { store->compact(Names::task_key(id), seq); });
                       }
                       record_deleted(id);
                     });
}

void NatsTransport::Impl::record_written(const std::string& task_id, const PublishResult& r) {
  std::string reply;
  bool conflict = false;
  {
    std::lock_guard lock(mu);
    auto it = inflight.find(task_id);
    if (it == inflight.end()) return;
    Inflight& f = it->second;
    f.record_busy = false;
    // on_receipt acks a delivery once the host holds it durably (or never can: see `permanent`).
    const auto ack_on_receipt = [&] {
      if (f.receipt_ack_due(options.ack_mode)) reply = f.reply;
    };
    if (r.stored) {
      f.record_rev = r.seq;
      f.record_written = true;
      ack_on_receipt();
      if (f.record_delete) {
        delete_record_locked(f);
      } else if (f.record_dirty && !f.completion_sent) {
        write_record_locked(f);
      }
    } else if (r.js_code == kJsWrongLastSequence) {
      conflict = true;
      f.record_busy = true;  // no other write until the conflict is resolved
    } else if (r.permanent) {
      // Over the server's max_payload (the record carries the assignment): no write of it can succeed.
      // The task runs on without a record, as a task shorter than record_after does.
      // In on_receipt mode it is acked now all the same, or JetStream would redeliver it to another host
      // after ack_wait while it still runs here; should this host die, the orchestrator's timeout is
      // what retries it, as on_receipt means.
      log::error("nats: record of task {} cannot be written, the task runs without one (another host cannot "
                 "resume it should this one die): {}", task_id, r.error);
      f.record_unwritable = true;
      ack_on_receipt();
      if (f.record_delete) inflight.erase(it);
    } else {
      log::warn("nats: record of task {} not written: {}", task_id, r.error);
      if (f.record_delete) {
        inflight.erase(it);
      } else {
        f.record_dirty = true;  // the next tick tries again
      }
    }
  }
  if (!reply.empty()) ack(reply);
  if (conflict) worker->post([this, task_id] { resolve_conflict(task_id); });
}

void NatsTransport::Impl::record_deleted(const std::string& task_id) {
  // Deleted, or someone else changed it first (then it is theirs): either way this host is done with it.
  std::lock_guard lock(mu);
  auto it = inflight.find(task_id);
  if (it != inflight.end() && it->second.record_delete) inflight.erase(it);
}

void NatsTransport::Impl::resolve_conflict(const std::string& task_id) {
  uint64_t revision = 0;
  std::optional<RecordStore::Task> held;
  bool finished = false;
  try {
    held = store->task(task_id, &revision);
    // No record: never written by anyone, or deleted because the task ended. Only a stored completion
    // tells these apart, and only here, after a lost compare-and-set, is it worth the extra read.
    if (!held) finished = store->completion_exists(task_id);
  } catch (const std::exception& e) {
    log::warn("nats: record of task {}: {}", task_id, e.what());
    std::lock_guard lock(mu);
    if (auto it = inflight.find(task_id); it != inflight.end()) {
      it->second.record_busy = false;
      it->second.record_dirty = true;
    }
    return;
  }
  if (canceled_while_queued(held)) {
    drop_canceled_while_queued(task_id, revision);
    return;
  }
  std::string why;
  {
    std::lock_guard lock(mu);
    auto it = inflight.find(task_id);
    if (it == inflight.end()) return;
    Inflight& f = it->second;
    why = lost_because_locked(held, finished, f);
    if (why.empty()) {
      take_over_locked(f, revision);
      return;
    }
    f.record_busy = false;
  }
  fence(task_id, why);
}

bool NatsTransport::Impl::canceled_while_queued(const std::optional<RecordStore::Task>& held) {
  return held && held->record.owner.empty() && held->record.state == v1::CANCELED;
}

bool NatsTransport::Impl::takes_over_locked(const std::optional<RecordStore::Task>& held, const Inflight& f) const {
  return !held || held->record.owner.empty() || held->record.owner == options.worker_id ||
         !liveness->alive(held->record.owner) || held->record.attempt < f.attempt;
}

std::string NatsTransport::Impl::lost_because_locked(const std::optional<RecordStore::Task>& held, bool finished,
                                                     const Inflight& f) const {
  // A missing record is ours to write again only if the task has not ended: a record is deleted once the
  // task's completion is stored, so a host that wakes up after another finished its task finds exactly
  // this, and writing the record again would list a finished task as running.
  if (!held && finished) return "was finished by another host";
  // A rescuer that serves no plugin of the kind handed the task back to its queue: no owner, but no
  // longer this attempt's (the record keeps the attempt it rescued; the next claim is a later one).
  if (held && held->record.owner.empty() && !held->record.rescued_from.empty() && held->record.attempt >= f.attempt) {
    return "was handed back to its queue by the rescuer of " + held->record.rescued_from;
  }
  if (takes_over_locked(held, f)) return {};
  return "is held by " + held->record.owner;
}

void NatsTransport::Impl::take_over_locked(Inflight& f, uint64_t revision) {
  f.record_busy = false;
  f.record_rev = revision;
  if (f.record_delete) {
    delete_record_locked(f);
  } else if (!f.completion_sent) {
    write_record_locked(f);
  }
}

void NatsTransport::Impl::let_go_copy(const std::string& reply) {
  if (options.ack_mode == AckMode::on_receipt) {
    ack(reply);
  } else {
    nak_later(reply);
  }
}

void NatsTransport::Impl::fence(const std::string& task_id, const std::string& why) {
  fenced_count++;
  log::warn("nats: task {} {}; dropping this host's attempt", task_id, why);
  drop_attempt(task_id, "task " + why, /*nak_if_on_completion=*/true);
}

bool NatsTransport::Impl::may_write() const {
  // Before start() nothing is written; liveness is set there, before any task arrives.
  if (!liveness) return true;
  // vouched() first: the liveness thread counts a taken key before it vouches for the beat that took it
  // back, so a fresh beat seen here comes with its count.
  if (!liveness->vouched(std::chrono::steady_clock::now())) return false;
  return liveness->times_taken() == ownership_checked.load();
}

void NatsTransport::Impl::check_ownership(uint64_t taken) {
  // Why not simply let the next record write find out (resolve_conflict)? A woken host writes events
  // first: its plugin's steps were due while it was stopped, and the events batches are no compare-and-
  // set. may_write() has held all of it since the host woke (its beats went stale on the clock); this
  // decides, task by task, before anything more is written. The cost falls on this rare path only: the
  // record writes of a host never presumed dead are unchanged.
  if (taken <= ownership_checked.load()) return;
  std::vector<std::string> running;
  {
    std::lock_guard lock(mu);
    for (const auto& [id, f] : inflight) {
      // A completion already handed to the batcher is held with the rest and goes out after this: the
      // first completion stored for a task wins, so a stale one is refused (and its record left alone).
      if (!f.fenced && !f.completion_sent) running.push_back(id);
    }
  }
  log::warn("nats: another host took this host's key; checking who holds its {} running task(s) before writing "
            "more for them", running.size());
  for (const auto& id : running) {
    std::optional<RecordStore::Task> held;
    bool finished = false;
    try {
      held = store->task(id);
      if (!held) finished = store->completion_exists(id);
    } catch (const std::exception& e) {
      log::warn("nats: record of task {}: {}; checking again", id, e.what());
      ownership_recheck = std::max(ownership_recheck, taken);
      return;  // still closed: tick() tries again
    }
    std::string why;
    {
      std::lock_guard lock(mu);
      auto it = inflight.find(id);
      if (it == inflight.end() || it->second.fenced || it->second.completion_sent) continue;
      why = lost_because_locked(held, finished, it->second);
    }
    // Kept: still ours (the rescuer had not taken it, or none will: a task without a record), or held
    // by a dead host now, which the next record write takes over as before. A rescuer that takes it
    // after this read makes that write lose, and resolve_conflict fences it then.
    if (!why.empty()) fence(id, why);
  }
  ownership_checked.store(taken);
}

void NatsTransport::Impl::drop_canceled_while_queued(const std::string& task_id, uint64_t revision) {
  // The client that canceled it stored its completion: this host only lets go of it, and removes the
  // record, which nothing else needs now that the task message is consumed.
  log::info("nats: task {} was canceled while it was queued; not running it", task_id);
  drop_attempt(task_id, "canceled while it was queued", /*nak_if_on_completion=*/false);
  if (worker) {
    worker->post([this, task_id, revision] {
      try {
        store->erase(Names::task_key(task_id), revision);
      } catch (const std::exception& e) {
        log::warn("nats: record of canceled task {}: {}", task_id, e.what());
      }
    });
  }
}

void NatsTransport::Impl::drop_attempt(const std::string& task_id, const std::string& reason,
                                       bool nak_if_on_completion) {
  // Nothing more of this attempt is published: what its plugin emitted and is still queued, and what it
  // emits while it is being cancelled. Marked before `fenced` is set: a completion that comes in between
  // then finds the entry unfenced and is handled below, and one that comes after clears the mark
  // (on_completion's forget) once and for all. The other order left the mark behind for good, and a later
  // attempt of the same id on this host published no events.
  batcher->drop(task_id);
  std::string reply;
  bool acked = true;
  bool completion_discarded = false;
  uint32_t attempt = 0;
  bool gone = false;
  {
    std::lock_guard lock(mu);
    auto it = inflight.find(task_id);
    if (it == inflight.end()) {
      gone = true;
    } else {
      Inflight& f = it->second;
      f.fenced = true;
      reply = f.reply;
      acked = f.acked;
      f.acked = true;
      if (f.completion_sent && !f.completion_stored) {
        // Its completion had reached the batcher (held by the write gate, say), which drop() discarded:
        // it will never be stored, so nothing else would retire the entry or give its slot back.
        completion_discarded = true;
        attempt = f.attempt;
        if (f.finishing && finishing_total > 0) --finishing_total;
        inflight.erase(it);
      }
    }
  }
  if (gone) {
    // Ended and retired between the caller's look and this one (its completion stored): nothing is left
    // to fence, and the mark set above would silence a later attempt of the id on this host.
    batcher->forget(task_id);
    return;
  }
  if (completion_discarded) {
    log::info("nats: dropping the completion of task {}: {}", task_id, reason);
    forget_fenced(task_id, attempt);
    if (puller) puller->wake();
  }
  if (!acked) {
    if (nak_if_on_completion && options.ack_mode == AckMode::on_completion) {
      nak_later(reply);
    } else {
      ack(reply);
    }
  }
  v1::CancelRequest req;
  req.set_task_id(task_id);
  req.set_reason(reason);
  router->cancel(req, [](const v1::DeliveryReceipt&) {});
}

}  // namespace taskhost::transport::nats
