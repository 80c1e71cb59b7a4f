// Taking tasks in: deliveries from the puller become router assignments. First deliveries take the
// fast path on the cnats thread (no network round trip), a batch of them admitted with one
// Router::assign_batch — except those a client queued with a record (taskhost submit), which are
// claimed on that record first, one round trip per batch (claim_recorded); redeliveries first look at the task's record
// and completion on the worker thread, because another host may hold it, may have finished it, or may
// have died holding it. Control messages for held tasks are applied here too.
#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "common/unix_time.hpp"
#include "transport/nats/transport_impl.hpp"
#include "transport/task_id.hpp"

#include <fmt/format.h>

#include <charconv>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace taskhost::transport::nats {
namespace {

// Settles the puller's credit for one delivery when the scope ends, whatever path it took.
class Settle {
 public:
  Settle(Puller* puller, std::string kind) : puller_(puller), kind_(std::move(kind)) {}
  ~Settle() {
    if (puller_ != nullptr) puller_->settled(kind_);
  }
  Settle(const Settle&) = delete;
  Settle& operator=(const Settle&) = delete;

 private:
  Puller* puller_;
  std::string kind_;
};

}  // namespace

void NatsTransport::Impl::ack(const std::string& reply, const char* kind) {
  if (!reply.empty()) natsConnection_PublishString(connection->nc(), reply.c_str(), kind);
}

void NatsTransport::Impl::nak_later(const std::string& reply) {
  // Come back after one ack_wait: by then the holder has finished it, or has died and been noticed.
  nak_after(reply, options.ack_wait);
}

void NatsTransport::Impl::nak_after(const std::string& reply, std::chrono::nanoseconds delay) {
  ack(reply, fmt::format(R"(-NAK {{"delay":{}}})", delay.count()).c_str());
}

void NatsTransport::Impl::on_task_messages(std::vector<Puller::Delivered>& batch) {
  std::vector<Fresh> fresh;
  fresh.reserve(batch.size());
  for (const auto& [kind, msg] : batch) {
    received++;
    Delivery d;
    d.kind = *kind;
    d.reply = natsMsg_GetReply(msg) ? natsMsg_GetReply(msg) : "";
    d.info = parse_ack_reply(d.reply).value_or(DeliveryInfo{});
    if (natsMsg_GetData(msg) != nullptr) d.data.assign(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
    const char* rev = nullptr;
    if (natsMsgHeader_Get(msg, kRecordRevisionHeader, &rev) == NATS_OK && rev != nullptr) {
      std::from_chars(rev, rev + std::strlen(rev), d.client_revision);
    }
    const char* rescued_from = nullptr;
    d.rescued = natsMsgHeader_Get(msg, kRescuedHeader, &rescued_from) == NATS_OK;
    reaper.add(msg);

    v1::TaskAssignment a;
    // Nothing can be answered for these, so they are taken out of the queue (so they block no one) and
    // logged: no task id to answer to, or one too long to publish for. An id goes into the subjects and
    // keys of everything published for its task: past the server's control line limit (4 KB by default)
    // the server closes the connection that publishes it, and JetStream then hands the message to the
    // next host.
    std::string unanswerable;
    if (!a.ParseFromString(d.data)) {
      unanswerable = fmt::format("{} bytes that are not a TaskAssignment in protobuf", d.data.size());
    } else if (a.task_id().empty()) {
      unanswerable = "field 'task_id' is empty";
    } else if (a.task_id().size() > kMaxTaskIdBytes) {
      unanswerable = fmt::format("field 'task_id' is {} bytes long, longer than {} (it begins '{}')",
                                 a.task_id().size(), kMaxTaskIdBytes, a.task_id().substr(0, 40));
    }
    if (!unanswerable.empty()) {
      log::warn("nats: dropping a malformed assignment on kind {} (stream sequence {}): {}", d.kind, d.info.stream_seq,
                unanswerable);
      ack(d.reply, "+TERM");
      puller->settled(d.kind);
      continue;
    }
    if (a.has_execute() && a.execute().component_id() != d.kind) {
      // Published on one kind's subject naming another kind: it would run as the kind it names, in the
      // slot of the kind it came by. Not run.
      Settle settle(puller.get(), d.kind);
      fail_delivery(a, d, std::max<uint32_t>(1, a.execute().attempt()), v1::INVALID_INPUT, "rejected",
                    fmt::format("task '{}' was queued on the subject of kind '{}' but its assignment names kind '{}'",
                                a.task_id(), d.kind, a.execute().component_id()));
      continue;
    }
    // Over max_deliver too: claim_redelivered decides whether it is poisoned. A task a rescuer handed back
    // goes the same way: its record says who ran it, and what to resume from.
    if (d.info.delivered > 1 || d.rescued) {
      worker->post([this, a = std::move(a), d = std::move(d)]() mutable { claim_redelivered(std::move(a), std::move(d)); });
      continue;
    }
    fresh.push_back(Fresh{std::move(a), std::move(d)});
  }
  if (!fresh.empty()) claim_fresh(fresh);
}

void NatsTransport::Impl::claim_fresh(std::vector<Fresh>& batch) {
  // Every message of the batch is settled with the puller at the end, whatever became of it.
  std::map<std::string, size_t> per_kind;
  for (const auto& f : batch) ++per_kind[f.delivery.kind];
  struct SettleAll {
    Puller* puller;
    const std::map<std::string, size_t>& counts;  // read at the end: claim_recorded settles its own
    ~SettleAll() {
      for (const auto& [kind, n] : counts) puller->settled(kind, n);
    }
  } settle{puller.get(), per_kind};

  std::shared_lock intake(intake_mu);
  if (draining) {
    for (const auto& f : batch) ack(f.delivery.reply, "-NAK");
    handed_back += batch.size();
    return;
  }
  std::vector<v1::TaskAssignment> assignments;
  std::vector<const Delivery*> deliveries;
  std::vector<Fresh> recorded;
  assignments.reserve(batch.size());
  deliveries.reserve(batch.size());
  {
    std::lock_guard lock(mu);
    for (auto& [a, d] : batch) {
      const std::string& id = a.task_id();
      if (inflight.count(id)) {
        // The same task id published again while it runs here: it is claimed already.
        ack(d.reply);
        continue;
      }
      Inflight f;
      f.task_id = id;
      f.kind = d.kind;
      f.attempt = std::max<uint32_t>(1, a.has_execute() ? a.execute().attempt() : 1);
      f.assignment = std::move(d.data);
      f.reply = d.reply;
      f.received = std::chrono::steady_clock::now();
      f.last_progress_ack = f.received;
      f.created_unix_ms = d.submitted_unix_ms();
      f.record_rev = d.client_revision;
      if (d.client_revision != 0) {
        // A client's queued record: the client may cancel it while queued, and says so ("canceled before
        // any host started it"). Claimed before it starts (claim_recorded), or a cancel landing between
        // this pull and the start would end a task that runs all the same.
        f.record_busy = true;
        inflight.emplace(id, std::move(f));
        --per_kind[d.kind];  // settled once claimed
        recorded.push_back(Fresh{std::move(a), std::move(d)});
        continue;
      }
      inflight.emplace(id, std::move(f));
      assignments.push_back(std::move(a));
      deliveries.push_back(&d);
    }
  }
  if (!recorded.empty()) {
    worker->post([this, recorded = std::move(recorded)]() mutable { claim_recorded(std::move(recorded)); });
  }
  // One admission call for the whole pull (a router lock and a burst of starts per 16), not one per message.
  const auto outcomes = router->assign_batch(assignments);
  for (size_t i = 0; i < assignments.size(); ++i) {
    const auto& a = assignments[i];
    const uint32_t attempt = std::max<uint32_t>(1, a.has_execute() ? a.execute().attempt() : 1);
    after_assign(a.task_id(), attempt, outcomes[i], deliveries[i]->info.stored_unix_ns, deliveries[i]->reply);
  }
}

namespace {

// Settles every message of a claimed batch with the puller, whatever became of it.
struct SettleEach {
  Puller* puller;
  const std::vector<NatsTransport::Impl::Fresh>& batch;
  ~SettleEach() {
    for (const auto& f : batch) puller->settled(f.delivery.kind);
  }
};

}  // namespace

void NatsTransport::Impl::claim_recorded(std::vector<Fresh> batch) {
  if (batch.empty()) return;
  // A test's window between the pull and the claim, for a client's cancel to land in.
  if (failpoint("nats.intake.slow_claim")) std::this_thread::sleep_for(std::chrono::seconds(1));
  std::shared_lock intake(intake_mu);
  if (draining) {
    const SettleEach settle{puller.get(), batch};
    hand_back_unclaimed(batch);
    return;
  }
  // The claims go out together (compare-and-set on each client's record) and are answered together:
  // one round trip for the batch, which the worker thread does not wait out.
  auto claims = std::make_shared<PendingClaims>();
  claims->batch = std::move(batch);
  const auto now = std::chrono::steady_clock::now();
  claims->deadline = now + kClaimWait;
  // A test's server slow to answer: the answers are taken as if they came 5 s late.
  claims->answers_usable = failpoint("nats.intake.slow_claim_answers") ? now + std::chrono::seconds(5) : now;
  claims->left = claims->batch.size();
  claims->results.resize(claims->batch.size());
  {
    std::lock_guard lock(claims_mu);
    ++claims_in_flight;
  }
  pending_claims.push_back(claims);
  const auto& fresh = claims->batch;
  std::vector<std::string> records(fresh.size());
  {
    std::lock_guard lock(mu);
    for (size_t i = 0; i < fresh.size(); ++i) {
      if (auto it = inflight.find(fresh[i].assignment.task_id()); it != inflight.end()) {
        records[i] = encode_record(record_of(it->second));
      }
    }
  }
  for (size_t i = 0; i < fresh.size(); ++i) {
    std::string record = std::move(records[i]);
    publisher->publish(names.kv_subject(Names::task_key(fresh[i].assignment.task_id())), std::move(record), {}, {},
                       Expect::subject_at(fresh[i].delivery.client_revision),
                       [this, claims, i](const PublishResult& r) {
                         bool last = false;
                         {
                           std::lock_guard lock(claims->mu);
                           claims->results[i] = r;
                           last = --claims->left == 0;
                         }
                         if (last) worker->post([this, claims] { finish_claims_if_answered(claims); });
                       });
  }
}

void NatsTransport::Impl::hand_back_unclaimed(const std::vector<Fresh>& batch) {
  std::lock_guard lock(mu);
  for (const auto& f : batch) {
    inflight.erase(f.assignment.task_id());
    ack(f.delivery.reply, "-NAK");
  }
  handed_back += batch.size();
}

void NatsTransport::Impl::finish_claims_if_answered(const std::shared_ptr<PendingClaims>& claims) {
  // Answers held back (a test's slow server) are taken up by tick() once usable.
  if (claims->answered_by(std::chrono::steady_clock::now())) finish_claims(claims);
}

void NatsTransport::Impl::finish_claims(const std::shared_ptr<PendingClaims>& claims) {
  if (claims->finished) return;
  claims->finished = true;
  std::erase(pending_claims, claims);
  struct Finished {
    Impl* self;
    ~Finished() {
      {
        std::lock_guard lock(self->claims_mu);
        --self->claims_in_flight;
      }
      self->claims_done.notify_all();
    }
  } finished{this};
  const std::vector<Fresh>& batch = claims->batch;
  const SettleEach settle{puller.get(), batch};
  std::shared_lock intake(intake_mu);
  if (claims_closed) {
    hand_back_unclaimed(batch);  // a drain that gave up waiting drains the router: it would refuse them
    return;
  }
  std::vector<v1::TaskAssignment> assignments;
  std::vector<const Delivery*> deliveries;
  std::vector<std::string> conflicts;  // lost, and the record could not be read: resolved once started
  std::vector<std::string> acks;
  for (size_t i = 0; i < batch.size(); ++i) {
    const std::string& id = batch[i].assignment.task_id();
    std::optional<PublishResult> r;
    {
      std::lock_guard lock(claims->mu);
      r = claims->results[i];
    }
    // Lost: the record changed since the client queued it. Read it now and decide before the start, as
    // resolve_conflict decides after one.
    const bool lost = r && !r->stored && r->js_code == kJsWrongLastSequence;
    bool read = false;
    uint64_t revision = 0;
    std::optional<RecordStore::Task> held;
    if (lost) {
      try {
        held = store->task(id, &revision);
        read = true;
      } catch (const std::exception& e) {
        log::warn("nats: record of task {}: {}", id, e.what());
      }
      if (read && canceled_while_queued(held)) {
        let_go_unstarted(id, revision);
        continue;
      }
    }
    std::string holder;
    std::string reply;
    {
      std::lock_guard lock(mu);
      auto it = inflight.find(id);
      if (it == inflight.end()) continue;
      Inflight& f = it->second;
      f.record_busy = false;
      if (r && r->stored) {
        f.record_rev = r->seq;
        f.record_written = true;
        if (f.receipt_ack_due(options.ack_mode)) acks.push_back(f.reply);  // held durably
      } else if (lost && read) {
        if (takes_over_locked(held, f)) {
          take_over_locked(f, revision);  // claimed again at the record's revision, still before the start
        } else {
          // A live host claimed it first (JetStream handed it on while this claim waited, or an id queued
          // twice): not started here.
          holder = held->record.owner;
          reply = f.reply;
          inflight.erase(it);
        }
      } else if (lost) {
        f.record_busy = true;
        conflicts.push_back(id);
      } else if (r && r->permanent) {
        // As record_written: redelivered, it would run on another host too.
        if (f.receipt_ack_due(options.ack_mode)) acks.push_back(f.reply);
        log::error("nats: record of task {} cannot be written, the task runs without one (another host cannot "
                   "resume it should this one die): {}", id, r->error);
        f.record_unwritable = true;
      } else {
        f.record_dirty = true;  // no answer, or a transient error: the next tick writes it
      }
    }
    if (!holder.empty()) {
      log::info("nats: task {} is held by {}; not starting this copy", id, holder);
      let_go_copy(reply);
      continue;
    }
    assignments.push_back(batch[i].assignment);
    deliveries.push_back(&batch[i].delivery);
  }
  for (const auto& reply : acks) ack(reply);
  const auto outcomes = router->assign_batch(assignments);
  for (size_t i = 0; i < assignments.size(); ++i) {
    const auto& a = assignments[i];
    const uint32_t attempt = std::max<uint32_t>(1, a.has_execute() ? a.execute().attempt() : 1);
    after_assign(a.task_id(), attempt, outcomes[i], deliveries[i]->info.stored_unix_ns, deliveries[i]->reply);
  }
  for (const auto& id : conflicts) resolve_conflict(id);
}

void NatsTransport::Impl::let_go_unstarted(const std::string& task_id, uint64_t revision) {
  std::string reply;
  {
    std::lock_guard lock(mu);
    auto it = inflight.find(task_id);
    if (it == inflight.end()) return;
    reply = it->second.reply;
    inflight.erase(it);
  }
  // The client that canceled it stored its one terminal record; the message and the record go.
  log::info("nats: task {} was canceled while it was queued; not starting it", task_id);
  ack(reply);
  try {
    store->erase(Names::task_key(task_id), revision);
  } catch (const std::exception& e) {
    log::warn("nats: record of canceled task {}: {}", task_id, e.what());
  }
}

void NatsTransport::Impl::after_assign(const std::string& task_id, uint32_t attempt, const tasks::AssignOutcome& outcome,
                                       int64_t assigned_unix_ns, const std::string& reply, const ControlMark& resumed) {
  if (outcome.result == tasks::AssignOutcome::Result::accepted) {
    control->open(task_id, attempt, assigned_unix_ns, resumed);
    return;
  }
  if (outcome.result == tasks::AssignOutcome::Result::duplicate) {
    // The router already ran this attempt here (its completion is stored or on its way): this
    // delivery is a leftover.
    {
      std::lock_guard lock(mu);
      auto it = inflight.find(task_id);
      if (it != inflight.end() && !it->second.completion_sent && it->second.reply == reply) inflight.erase(it);
    }
    ack(reply);
  }
  // Rejected: the router answered with a failed completion on the outbox; it is stored and acked like
  // any other.
}

int64_t Delivery::submitted_unix_ms() const {
  return info.stored_unix_ns > 0 ? info.stored_unix_ns / 1'000'000 : unix_ms_now();
}

void NatsTransport::Impl::claim_redelivered(v1::TaskAssignment a, Delivery d) {
  Settle settle(puller.get(), d.kind);
  std::shared_lock intake(intake_mu);
  if (draining) {
    ack(d.reply, "-NAK");
    handed_back++;
    return;
  }
  const std::string id = a.task_id();
  {
    std::lock_guard lock(mu);
    if (auto it = inflight.find(id); it != inflight.end()) {
      // JetStream gave up waiting for our ack (e.g. it was lost in a server restart) and sent it again:
      // keep holding it through the newer delivery. Said, because it also means in-progress acks came late.
      log::info("nats: task {} delivered again while this host holds it (delivery {}); holding the newer one", id,
                d.info.delivered);
      it->second.reply = d.reply;
      if (it->second.acked) ack(d.reply);
      return;
    }
  }
  try {
    if (store->completion_exists(id)) {
      ack(d.reply);  // it ended; only the ack was lost
      return;
    }
    uint64_t revision = 0;
    const auto held = store->task(id, &revision);
    const uint32_t base = std::max<uint32_t>(1, a.has_execute() ? a.execute().attempt() : 1);
    if (held && !held->record.owner.empty() && held->record.owner != options.worker_id &&
        liveness->alive(held->record.owner) && held->record.attempt >= base) {
      // A live host holds it; this is a stale copy. (Not poisoned however often it came: in on_completion
      // mode each nak_later is a delivery, and a holder still looking alive is no sign of a bad task.)
      let_go_copy(d.reply);
      return;
    }
    // Poisoned: started max_deliver times already. A record with an owner counts the starts (each claim
    // wrote attempt + 1); the delivery count would also count every nak_later while a holder that died
    // still looked alive, and failed tasks that had run once. Without one, every delivery may have started it.
    // A record a rescuer handed back has no owner, but counts its starts the same way.
    const bool ran = held && (!held->record.owner.empty() || !held->record.rescued_from.empty());
    const bool claimed = ran && held->record.attempt >= base;
    const uint64_t starts = claimed ? held->record.attempt - base + 1 : d.info.delivered - 1;
    // The record knows which attempt ran last; without one, every earlier delivery may have started it.
    const uint32_t attempt = held ? std::max(base, held->record.attempt + 1)
                                  : base + static_cast<uint32_t>(d.info.delivered - 1);
    if (starts >= options.max_deliver) {
      // The attempt after the last start. Its record goes with it: `status` lists unfinished tasks, and a
      // record kept a poisoned task listed (as failed) for good.
      poisoned(a, d, starts, base + static_cast<uint32_t>(starts), held ? revision : 0);
      return;
    }
    // Started somewhere before (it has an owner): resume it from its checkpoint. In on_completion mode a
    // kind that cannot re-attach simply runs again — redelivery is that mode's retry.
    const auto binding = registry->resolve(d.kind);
    bool reattach = ran;
    if (options.ack_mode == AckMode::on_completion && !(binding && binding.executor->supports_reattach())) {
      reattach = false;
    }
    const std::string checkpoint = held && reattach ? held->record.checkpoint : std::string();
    if (a.has_execute()) a.mutable_execute()->set_attempt(attempt);

    Inflight f;
    f.task_id = id;
    f.kind = d.kind;
    f.attempt = attempt;
    f.assignment = d.data;  // as first queued: its attempt is the base that rescues count starts from
    f.reply = d.reply;
    f.received = std::chrono::steady_clock::now();
    f.last_progress_ack = f.received;
    f.created_unix_ms = held && held->record.created_unix_ms != 0 ? held->record.created_unix_ms : d.submitted_unix_ms();
    f.checkpoint = checkpoint;
    const ControlMark resumed = held && reattach ? held->record.control : ControlMark{};
    f.resume_control(resumed);
    // Take ownership before starting: the compare-and-set fences whoever held it before.
    const uint64_t rev = store->write_task(record_of(f), revision);
    if (rev == 0) {
      let_go_copy(d.reply);
      return;
    }
    f.record_rev = rev;
    f.record_written = true;
    if (options.ack_mode == AckMode::on_receipt) {
      f.acked = true;
      ack(d.reply);
    }
    {
      std::lock_guard lock(mu);
      inflight.emplace(id, std::move(f));
    }
    if (reattach) reattached++;
    const auto outcome = router->assign(a, tasks::Resume{reattach, checkpoint});
    // A handed-back copy was stored after the steering sent to the task while its host was dead: every
    // control message of the task counts (those its checkpoint reflects are skipped by the mark).
    after_assign(id, attempt, outcome, d.rescued ? 0 : d.info.stored_unix_ns, d.reply, resumed);
  } catch (const std::exception& e) {
    // Most likely the server is busy electing a leader (a node restarted). Handed back at once, the
    // task came straight back and failed again: each round is a delivery, and a few seconds of that
    // made tasks "poisoned" that had never run. Back off instead.
    log::warn("nats: redelivered task {}: {}; handing it back for {} ms", id, e.what(), kTransientBackoff.count());
    nak_after(d.reply, std::min<std::chrono::nanoseconds>(kTransientBackoff, options.ack_wait));
  }
}

void NatsTransport::Impl::poisoned(const v1::TaskAssignment& a, const Delivery& d, uint64_t starts, uint32_t refused,
                                   uint64_t record_rev) {
  // The starts, not JetStream's delivery count: that also counts the redeliveries put off while a dead
  // holder still looked alive, and said "delivered 5 times" of a task that ran 3.
  fail_delivery(a, d, refused, v1::WORKER_ERROR, "poisoned",
                fmt::format("task '{}' was started {} time{} without completing (max_deliver {}); attempt {} is not "
                            "started",
                            a.task_id(), starts, starts == 1 ? "" : "s", options.max_deliver, refused),
                record_rev);
}

void NatsTransport::Impl::fail_delivery(const v1::TaskAssignment& a, const Delivery& d, uint32_t attempt,
                                        v1::ErrorCode code, const std::string& error_kind, const std::string& message,
                                        uint64_t record_rev) {
  v1::TaskCompletion c;
  c.set_task_id(a.task_id());
  c.set_attempt(attempt);
  c.set_state(v1::FAILED);
  c.set_worker_id(options.worker_id);
  c.set_kind(d.kind);
  c.set_unix_ms(unix_ms_now());
  auto* err = c.mutable_error();
  err->set_code(code);
  err->set_kind(error_kind);
  err->set_message(message);
  {
    std::lock_guard lock(mu);
    if (inflight.count(a.task_id())) {
      ack(d.reply);
      return;
    }
    Inflight f;
    f.task_id = a.task_id();
    f.kind = d.kind;
    f.attempt = c.attempt();
    f.reply = d.reply;
    f.received = std::chrono::steady_clock::now();
    f.last_progress_ack = f.received;
    f.completion_sent = true;
    f.record_rev = record_rev;  // deleted once the completion is stored (completion_stored)
    mark_finishing_locked(f);
    inflight.emplace(f.task_id, std::move(f));
  }
  log::warn("nats: {}", err->message());
  batcher->completion(c);
}

void NatsTransport::Impl::apply_control(const ControlItem& item) {
  const std::string reply = item.reply;
  natsConnection* nc = connection->nc();
  auto answer = [this, nc, reply, task_id = item.task_id, seq = item.seq](const v1::DeliveryReceipt& r) {
    // Taken by the plugin (its deliver or cancel returned): a checkpoint from now on reflects it. A
    // queued message is not taken yet: the mark lists it as not taken until its outcome (on_delivery).
    if (seq != 0) {
      std::lock_guard lock(mu);
      if (auto it = inflight.find(task_id); it != inflight.end()) {
        Inflight& f = it->second;
        if (r.queued()) {
          f.held_control.insert_or_assign(seq, r.message_id());  // a re-attach's held one has its id now
        } else {
          f.control_seq = std::max(f.control_seq, seq);
          f.held_control.erase(seq);  // held by the attempt before, taken by this one
        }
      }
    }
    ControlChannel::send_receipt(nc, reply, r);
  };
  if (item.type == ControlItem::Type::cancel) {
    router->cancel(item.cancel, answer);
  } else {
    router->deliver(item.steer, answer);
  }
}

void NatsTransport::Impl::answer_ended(const ControlItem& item) {
  if (item.reply.empty()) return;
  v1::DeliveryReceipt r;
  r.set_task_id(item.task_id);
  if (item.type == ControlItem::Type::steer) r.set_message_id(item.steer.message_id());
  r.set_outcome(v1::DeliveryReceipt::TASK_ENDED);
  r.set_detail("task '" + item.task_id + "' already ended on " + options.worker_id);
  ControlChannel::send_receipt(connection->nc(), item.reply, r);
}

}  // namespace taskhost::transport::nats
