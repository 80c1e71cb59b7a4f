// NatsTransport: construction, start/drain/stop, the TaskOutbox side and the periodic upkeep.
#include "transport/nats/nats_transport.hpp"

#include "common/log.hpp"
#include "common/unix_time.hpp"
#include "transport/nats/setup.hpp"
#include "transport/nats/transport_impl.hpp"

namespace taskhost::transport::nats {

NatsTransport::Impl::Impl(NatsOptions o) : options(std::move(o)), names(options.stream_prefix, options.kv_bucket) {
  connection = std::make_unique<Connection>(options, "taskhost " + options.worker_id);
  options.replicas = replicas_for(*connection, options);
  ensure_streams(connection->js(), names, options);
  kv = open_bucket(connection->js(), names, options);
  store = std::make_unique<RecordStore>(*connection, names);
  // Results (events, completions, records) travel on a connection of their own: the server reads each
  // connection in order, so stored, compare-and-set results would otherwise queue ahead of the acks and
  // pull requests that keep tasks coming (measured: about +15 % tasks/s in bench_nats).
  results_connection = std::make_unique<Connection>(options, "taskhost " + options.worker_id + " results");
  publisher = std::make_unique<AsyncPublisher>(*results_connection);
  // Batches of at most half the server's max_payload (512 KiB by default): an event batch holds a
  // program's output for up to a linger, and the server refuses a message over the limit.
  const int64_t max_payload = natsConnection_GetMaxPayload(results_connection->nc());
  const size_t max_batch = max_payload > 0 ? std::min(EventBatcher::kMaxBatchBytes, static_cast<size_t>(max_payload) / 2)
                                           : EventBatcher::kMaxBatchBytes;
  batcher = std::make_unique<EventBatcher>(
      *publisher, names, options.worker_id,
      [this](const v1::TaskCompletion& c, const PublishResult& r) { completion_stored(c, r); },
      std::chrono::milliseconds(20), max_batch);
}

NatsTransport::Impl::~Impl() {
  stop();
  flush_publishes(std::chrono::seconds(5));
  publisher->stop();
  liveness.reset();
  if (kv != nullptr) kvStore_Destroy(kv);
  results_connection.reset();
  connection.reset();
}

void NatsTransport::Impl::start(tasks::Router& r, registry::KindRegistry& reg) {
  if (started) return;
  started = true;
  router = &r;
  registry = &reg;

  liveness = std::make_unique<HostLiveness>(*store, kv, options);
  liveness->start();
  batcher->set_gate([this] { return may_write(); });

  control = std::make_unique<ControlChannel>(
      *connection, names, options,
      ControlChannel::Hooks{[this](const ControlItem& item) { apply_control(item); },
                            [this](const ControlItem& item) { answer_ended(item); }});
  control->start();

  discovery = std::make_unique<DiscoveryResponder>(*connection, names, options.worker_id, *registry);
  discovery->start();

  worker = std::make_unique<SerialWorker>(std::chrono::milliseconds(100), [this] { tick(); });
  // Liveness has a thread of its own: a worker busy with slow requests (a server restarting) must not
  // delay this host's heartbeat into looking dead.
  liveness_thread = std::make_unique<SerialWorker>(std::chrono::milliseconds(100), [this] {
    for (const auto& dead : liveness->tick()) worker->post([this, dead] { rescue(dead); });
    // Another host took this host's key while it was stopped or cut off: until check_ownership() has
    // looked at each task, may_write() holds every write.
    if (const uint64_t taken = liveness->times_taken(); taken != ownership_check_posted) {
      ownership_check_posted = taken;
      worker->post([this, taken] { check_ownership(taken); });
    }
  });
  // Whatever a previous run of this worker id left recorded is ours to resume, first thing.
  worker->post([this] { rescue(options.worker_id); });

  puller = std::make_unique<Puller>(
      *connection, names, options,
      Puller::Hooks{[this](const std::string& kind) { return free_slots(kind); },
                    [this](std::vector<Puller::Delivered>& batch) { on_task_messages(batch); },
                    [this](const std::string& kind) {
                      worker->post([this, kind] {
                        try {
                          ensure_streams(connection->js(), names, options);
                          ensure_kind_consumer(connection->js(), names, options, kind);
                        } catch (const std::exception& e) {
                          log::warn("nats: consumer for kind {}: {}", kind, e.what());
                        }
                      });
                    }});

  listening->store(true);
  auto flag = listening;
  registry->on_switch([this, flag](const std::string&, const registry::Binding&) {
    if (flag->load()) worker->post([this] { refresh_kinds(); });
  });
  worker->post([this] { refresh_kinds(); });
}

void NatsTransport::Impl::refresh_kinds() {
  std::set<std::string> now;
  for (const auto& b : registry->bindings()) now.insert(b.executor->kind());
  std::vector<std::string> serving;
  for (const auto& kind : now) {
    if (!kinds.count(kind)) {
      try {
        ensure_kind_consumer(connection->js(), names, options, kind);
      } catch (const std::exception& e) {
        // Pulling starts anyway: the puller asks for the consumer again when its requests go unanswered.
        log::warn("nats: consumer for kind {}: {}", kind, e.what());
      }
    }
    serving.push_back(kind);
  }
  kinds = std::move(now);
  puller->set_kinds(serving);
  log::info("nats: {} pulling {} kind(s) as {}", redact_url(options.url), serving.size(), options.worker_id);
}

void NatsTransport::Impl::tick() {
  reaper.flush();
  const auto now = std::chrono::steady_clock::now();
  // Claim batches whose answers are all in but were held back (a test's slow server), or that waited
  // kClaimWait for answers that did not come: taken up without them (their records are written later).
  std::vector<std::shared_ptr<PendingClaims>> due_claims;
  for (const auto& c : pending_claims) {
    if (now >= c->deadline || c->answered_by(now)) due_claims.push_back(c);
  }
  for (const auto& c : due_claims) finish_claims(c);
  if (ownership_recheck > ownership_checked.load()) check_ownership(ownership_recheck);
  // In milliseconds: ack_wait is whole seconds, and 2 s / 3 in seconds is 0 (an in-progress ack per tick).
  const auto progress_every = std::chrono::duration_cast<std::chrono::milliseconds>(options.ack_wait) / 3;
  std::vector<std::string> progress;
  {
    std::lock_guard lock(mu);
    for (auto& [id, f] : inflight) {
      if (f.completion_sent || f.fenced) continue;
      const bool due = now - f.received >= options.record_after;
      if (!f.record_busy && ((due && !f.record_written) || f.record_dirty)) write_record_locked(f);
      if (!f.acked && !f.reply.empty() && now - f.last_progress_ack >= progress_every) {
        f.last_progress_ack = now;
        progress.push_back(f.reply);
      }
    }
  }
  // "Still working on it": JetStream restarts the ack_wait clock of each held delivery.
  for (const auto& reply : progress) ack(reply, "+WPI");

  // Rescues cut short: this host won them, so no other host will take them up.
  std::vector<std::string> due;
  for (const auto& [dead, when] : rescue_retries) {
    if (when <= now) due.push_back(dead);
  }
  for (const auto& dead : due) rescue(dead);
}

void NatsTransport::Impl::drain(std::chrono::milliseconds grace) {
  if (!started) return;
  {
    std::unique_lock lock(intake_mu);
    draining = true;
  }
  {
    // Claims sent before draining began are this host's on their records: their tasks are assigned (and
    // then drained like the others) before the router drains. Each batch ends within kClaimWait.
    std::unique_lock lock(claims_mu);
    if (!claims_done.wait_for(lock, kClaimWait + std::chrono::seconds(2), [&] { return claims_in_flight == 0; })) {
      log::warn("nats: draining: {} batch(es) of claims still unanswered; their tasks are handed back",
                claims_in_flight);
    }
  }
  {
    std::unique_lock lock(intake_mu);
    claims_closed = true;
  }
  puller->pause();
  pulls_paused_at = std::chrono::steady_clock::now();
  log::info("nats: draining: no more pulls; waiting up to {} ms for {} task(s)", grace.count(),
            router->active_count());
  // What is still running after `grace` and whose kind can re-attach is detached, not canceled: no
  // completion, its record (with the checkpoint the detach wrote) stays, and stop() hands it to the
  // fleet. Only the others end, canceled, naming the shutdown. A clean stop must not end for good what a
  // crash of this host would have kept. Tasks the router holds but never started (rare: the puller asks
  // only for free slots) are canceled, as before: a record written for one would have a rescuer re-attach
  // a task that never ran, and fail it "orphaned" when its kind cannot re-attach.
  router->drain(grace, tasks::Router::NotStarted::cancel, tasks::Router::Running::leave_reattachable);
  drained = true;
  // Left without a record (over the server's max_payload) and acked, a task is in nobody's hands: no
  // host could ever resume it. It ends canceled, as it did before tasks were left to the fleet.
  std::vector<v1::TaskCompletion> unresumable;
  {
    std::lock_guard lock(mu);
    for (const auto& [id, f] : inflight) {
      if (f.completion_sent || f.fenced || !f.record_unwritable || !f.acked) continue;
      v1::TaskCompletion& c = unresumable.emplace_back();
      c.set_task_id(id);
      c.set_attempt(f.attempt);
      c.set_state(v1::CANCELED);
      c.set_worker_id(options.worker_id);
      c.set_kind(f.kind);
      c.set_unix_ms(unix_ms_now());
      c.mutable_error()->set_code(v1::CANCELLED);
      c.mutable_error()->set_message("host " + options.worker_id +
                                     " is shutting down, and the task has no record another host could resume it from");
    }
  }
  for (const auto& c : unresumable) on_completion(c);
  if (!flush_publishes(std::chrono::seconds(30))) {
    log::warn("nats: drain: {} publish(es) not stored{}; the tasks they belong to are taken over from their records "
              "by another host, as a dead host's are",
              publisher->in_flight(), connection->connected() ? "" : " (the server is unreachable)");
  }
}

bool NatsTransport::Impl::flush_publishes(std::chrono::milliseconds timeout) {
  // Waiting longer for a server that is gone only delays the exit: what is not stored is exactly what a
  // host that died would leave, and the records make another host take it over.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return publisher->in_flight() == 0;
    if (publisher->flush(std::min<std::chrono::milliseconds>(
            std::chrono::duration_cast<std::chrono::milliseconds>(left), std::chrono::milliseconds(200)))) {
      return true;
    }
    if (connection->down_for() >= kUnreachableAfter) return false;
  }
}

void NatsTransport::Impl::stop() {
  if (!started || stopped) return;
  stopped = true;
  listening->store(false);
  // Unreachable, the server hears of nothing more. Closed first, the connections make what is still
  // waiting for an answer (a liveness beat, a KV watcher's consumer delete, a rescue) fail at once
  // instead of each waiting out its 5 s; the lease writes below are skipped, and the host key expires by
  // itself.
  const bool reachable = connection->down_for() < kUnreachableAfter;
  if (!reachable) {
    log::info("nats: closing the connections to the unreachable server");
    connection->close();
    if (results_connection) results_connection->close();
  }
  if (puller) puller->stop();
  if (control) control->stop();
  if (discovery) discovery->stop();
  if (liveness_thread) liveness_thread->stop();
  if (worker) worker->stop();
  // Dead hosts this one won but did not finish rescuing: their leases fall silent for another host.
  if (liveness && reachable) liveness->leave();
  // The last checkpoints of the tasks a drain detached are in their records before anyone looks.
  flush_publishes(std::chrono::seconds(5));
  size_t left = 0;
  {
    std::lock_guard lock(mu);
    left = inflight.size();
  }
  if (!liveness || !reachable) return;
  if (left == 0) {
    // With nothing left to re-attach, leave at once instead of waiting to be declared dead.
    liveness->remove_self();
    return;
  }
  if (!drained) return;  // not a clean stop (a test's crash): the key falls silent, as a dead host's does
  // Left by the drain (detached, or never started here): handed to the fleet now rather than after
  // host_dead_after. The key says this host left (HostLiveness::hand_over), so the first other host
  // to see it wins its lease and re-attaches the recorded tasks from their checkpoints, exactly as it
  // rescues a dead host's, with the same compare-and-set fencing, hand-back to a kind's queue and
  // max_deliver count. (Handing each task back to its queue from here instead would need a publish
  // and a record write per task from a host on its way out, and deleting the key would make the
  // others forget this host and rescue nothing.)
  const bool marked = liveness->hand_over();
  std::vector<std::string> unacked;
  {
    std::lock_guard lock(mu);
    for (auto& [id, f] : inflight) {
      if (!f.acked && !f.reply.empty()) {
        f.acked = true;
        unacked.push_back(f.reply);
      }
    }
  }
  // Deliveries not acked yet (a task with no record yet; every task in on_completion mode, whose
  // records rescues skip) go back to JetStream, as a crash leaves them, but without waiting out
  // ack_wait: the host that gets one finds this host gone and resumes the task from its record. Not
  // before this host's last pull requests have expired, though: nats-server (2.9) hands a delivery to
  // a waiting request whoever still reads its inbox (nobody, here), and the task would be lost for
  // another ack_wait. Nor before the mark has reached the other hosts, or they would take this host
  // for alive and put the task off.
  const auto pulls_expire = pulls_paused_at + options.pull_expiry + std::chrono::milliseconds(250);
  const auto delay = std::max<std::chrono::nanoseconds>(pulls_expire - std::chrono::steady_clock::now(),
                                                        std::chrono::milliseconds(500));
  for (const auto& reply : unacked) nak_after(reply, delay);
  if (!unacked.empty()) (void)natsConnection_FlushTimeout(connection->nc(), 2'000);
  log::info("nats: {} task(s) left for another host to re-attach from their records{}", left,
            marked ? "" : " (once this host's key falls silent)");
}

void NatsTransport::Impl::on_completion(const v1::TaskCompletion& completion) {
  bool fenced = false;
  v1::TaskCompletion c = completion;
  {
    std::lock_guard lock(mu);
    auto it = inflight.find(c.task_id());
    if (it != inflight.end()) {
      // Its record, which said when it was submitted, goes with the task's end: the completion says it.
      if (c.created_unix_ms() == 0) c.set_created_unix_ms(it->second.created_unix_ms);
      if (it->second.fenced) {
        fenced = true;
        inflight.erase(it);
      } else {
        it->second.completion_sent = true;
        mark_finishing_locked(it->second);
      }
    }
  }
  if (fenced) {
    log::info("nats: dropping the completion of task {}: another host holds it now", c.task_id());
    forget_fenced(c.task_id(), c.attempt());
    return;
  }
  batcher->completion(c);
}

void NatsTransport::Impl::forget_fenced(const std::string& task_id, uint32_t attempt) {
  batcher->forget(task_id);
  // Not inline: this may run inside a control hook (a cancel), which holds the channel's lock.
  if (worker) worker->post([this, task_id, attempt] { control->close(task_id, attempt); });
}

void NatsTransport::Impl::completion_stored(const v1::TaskCompletion& c, const PublishResult& r) {
  if (!r.stored && r.permanent && c.error().kind() != "too_large") {
    // Too large for the server (an output over its max_payload, with the task's last events): the task
    // still gets its one terminal record, failed and saying why, instead of a retry that never ends.
    log::error("nats: completion of task {} cannot be stored: {}", c.task_id(), r.error);
    v1::TaskCompletion failed = c;
    failed.clear_output();
    failed.set_state(v1::FAILED);
    failed.mutable_error()->set_code(v1::WORKER_ERROR);
    failed.mutable_error()->set_kind("too_large");
    failed.mutable_error()->set_message("task '" + c.task_id() + "' ended " + v1::TaskState_Name(c.state()) +
                                        " but its completion cannot be stored: " + r.error);
    if (worker) worker->post([this, failed] { batcher->completion(failed); });
    return;
  }
  if (!r.stored && r.js_code != kJsWrongLastSequence) {
    // Not stored and nobody else's either: keep the delivery unacked and try again from the worker (the
    // stream may be being recreated).
    if (worker) {
      worker->post([this, c] {
        try {
          ensure_streams(connection->js(), names, options);
        } catch (const std::exception& e) {
          log::warn("nats: {}", e.what());
        }
        batcher->completion(c);
      });
    }
    return;
  }
  (r.stored ? completions : duplicates)++;
  std::string reply;
  bool freed = false;
  {
    std::lock_guard lock(mu);
    auto it = inflight.find(c.task_id());
    if (it == inflight.end()) return;
    Inflight& f = it->second;
    f.completion_stored = true;
    if (f.finishing) {
      // Still counted in finishing_total until the ack is out (below).
      f.finishing = false;
      freed = true;
    }
    if (!f.acked && !f.reply.empty()) {
      reply = f.reply;
      f.acked = true;
    }
    if (f.record_rev != 0 || f.record_busy) {
      f.record_delete = true;
      if (!f.record_busy) delete_record_locked(f);
    } else {
      inflight.erase(it);
    }
  }
  // The ack goes out before the slot is given back: the puller reads free_slots (under `mu`) only after
  // the ack is in the connection's buffer, so the pull request the freed slot causes follows the ack on
  // the same connection and this host never asks for a delivery while still holding the one it replaces.
  // (The server's count of unacked deliveries, the consumer's NumAckPending, may still briefly exceed the
  // slots: it takes acks off a queue of their own, apart from pull requests, and can serve the pull first.)
  if (!reply.empty()) ack(reply);
  if (freed) {
    {
      std::lock_guard lock(mu);
      if (finishing_total > 0) --finishing_total;
    }
    if (puller) puller->wake();
  }
  if (control && control->close(c.task_id(), c.attempt())) {
    // Steering reached this task: its control messages have served their purpose.
    const std::string subject = names.control_subject(c.task_id());
    worker->post([this, subject] {
      jsOptions jo;
      jsOptions_Init(&jo);
      jo.Stream.Purge.Subject = subject.c_str();
      jsErrCode code = static_cast<jsErrCode>(0);
      js_PurgeStream(connection->js(), names.control_stream().c_str(), &jo, &code);
    });
  }
}

size_t NatsTransport::Impl::free_slots(const std::string& kind) {
  // Finishing tasks of any kind count against this one too: the host limit is shared (conservative for
  // a kind with its own limit, which only sees its own).
  const size_t free = router->free_slots(kind);
  std::lock_guard lock(mu);
  return free > finishing_total ? free - finishing_total : 0;
}

void NatsTransport::Impl::mark_finishing_locked(Inflight& f) {
  if (f.finishing || f.reply.empty() || f.acked) return;  // no delivery held: nothing to count
  f.finishing = true;
  ++finishing_total;
}

void NatsTransport::Impl::on_checkpoint(const std::string& task_id, uint32_t attempt, std::string_view bytes) {
  std::lock_guard lock(mu);
  auto it = inflight.find(task_id);
  // The router hands over only the live attempt's checkpoints (the sink fences stale refs), in order under
  // the task's lock: one above the claimed attempt is the router restarting this host's claim (a reload's
  // migration, an isolated plugin's next process), recorded under the claimed attempt (Inflight::attempt).
  if (it == inflight.end() || it->second.fenced || attempt < it->second.attempt) return;
  Inflight& f = it->second;
  f.checkpoint.assign(bytes.data(), bytes.size());
  f.checkpoint_control = f.applied_mark();
  if (!f.completion_sent) write_record_locked(f);
}

void NatsTransport::Impl::on_delivery(const v1::DeliveryReceipt& receipt) {
  if (receipt.queued()) return;  // held again (an answer delivered at the start, ahead of its question)
  std::lock_guard lock(mu);
  auto it = inflight.find(receipt.task_id());
  if (it == inflight.end()) return;
  Inflight& f = it->second;
  // The held message has its outcome: taken (or refused) by the task, so a checkpoint from now on
  // reflects it. Message ids are the sender's: two held messages may share one, and the receipt does not
  // say which was taken. Then both stay held (the mark lists them as not taken): a replay of the one
  // taken, never a skip of the one still held.
  auto match = f.held_control.end();
  for (auto h = f.held_control.begin(); h != f.held_control.end(); ++h) {
    // (An empty id is a held message a re-attach inherited: resolved by its sequence when the control
    // channel hands it over again, apply_control.)
    if (h->second.empty() || h->second != receipt.message_id()) continue;
    if (match != f.held_control.end()) return;  // ambiguous
    match = h;
  }
  if (match == f.held_control.end()) return;
  f.control_seq = std::max(f.control_seq, match->first);
  f.held_control.erase(match);
}

// =====================================================================================================

NatsTransport::NatsTransport(NatsOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

NatsTransport::~NatsTransport() = default;

void NatsTransport::start(tasks::Router& router, registry::KindRegistry& registry) { impl_->start(router, registry); }
void NatsTransport::drain(std::chrono::milliseconds grace) { impl_->drain(grace); }
void NatsTransport::stop() { impl_->stop(); }
const NatsOptions& NatsTransport::options() const { return impl_->options; }
const Names& NatsTransport::names() const { return impl_->names; }

NatsTransport::Stats NatsTransport::stats() const {
  Stats s;
  s.received = impl_->received;
  s.handed_back = impl_->handed_back;
  s.completions = impl_->completions;
  s.duplicates = impl_->duplicates;
  s.reattached = impl_->reattached;
  s.orphaned = impl_->orphaned;
  s.handed_to_queue = impl_->handed_to_queue;
  s.fenced = impl_->fenced_count;
  if (impl_->puller) {
    const auto p = impl_->puller->stats();
    s.handed_back += p.handed_back;
    s.pull_requests = p.requests;
    s.max_credits = p.max_held;
    s.intake_batches = p.handovers;
    s.largest_intake_batch = p.largest_handover;
  }
  return s;
}

void NatsTransport::on_event(const v1::TaskEvent& event) { impl_->batcher->event(event); }

void NatsTransport::on_heartbeat(const v1::Heartbeat& heartbeat) {
  // Observers (an orchestrator) may listen; nothing stores it: liveness is the host key's job.
  const std::string bytes = heartbeat.SerializeAsString();
  const std::string subject = impl_->names.heartbeat_subject(heartbeat.task_id());
  natsConnection_Publish(impl_->connection->nc(), subject.c_str(), bytes.data(), static_cast<int>(bytes.size()));
}

void NatsTransport::on_completion(const v1::TaskCompletion& completion) { impl_->on_completion(completion); }

void NatsTransport::on_checkpoint(const std::string& task_id, uint32_t attempt, std::string_view bytes) {
  impl_->on_checkpoint(task_id, attempt, bytes);
}

void NatsTransport::on_delivery(const v1::DeliveryReceipt& receipt) { impl_->on_delivery(receipt); }

void NatsTransport::on_capacity(std::string_view) {
  if (impl_->puller) impl_->puller->wake();
}

}  // namespace taskhost::transport::nats
