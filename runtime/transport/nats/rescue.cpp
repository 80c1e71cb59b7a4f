// Rescuing the recorded tasks of a dead host (or of this worker id's previous run): each record is
// taken over by compare-and-set, which fences any later write of the old attempt; then the task is
// re-attached here with attempt + 1 and its last checkpoint, handed back to its kind's queue when no
// plugin here serves its kind (a host that does re-attaches it), or ended failed: "orphaned" when its
// assignment was not recorded, "poisoned" when hosts died running it max_deliver times. Records of on_completion
// hosts are left alone: JetStream redelivers those tasks, and the next host resumes them from the record
// (intake.cpp).
#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "common/unix_time.hpp"
#include "transport/nats/transport_impl.hpp"

#include <csignal>

#include <fmt/format.h>

namespace taskhost::transport::nats {

void NatsTransport::Impl::rescue(const std::string& dead) {
  if (rescue_all(dead)) {
    rescue_retries.erase(dead);
    liveness->release(dead);  // its key goes: nothing of it is left to rescue
    return;
  }
  if (!rescue_retries.count(dead)) log::warn("nats: rescue of {} cut short; trying again every second", dead);
  rescue_retries[dead] = std::chrono::steady_clock::now() + std::chrono::seconds(1);
}

bool NatsTransport::Impl::rescue_all(const std::string& dead) {
  struct Found {
    TaskRecord record;
    uint64_t revision;
  };
  std::vector<Found> found;
  kvWatcher* w = nullptr;
  kvWatchOptions wo;
  kvWatchOptions_Init(&wo);
  wo.IgnoreDeletes = true;
  const std::string pattern = std::string(Names::task_key_prefix) + "*";
  if (natsStatus s = kvStore_Watch(&w, kv, pattern.c_str(), &wo); s != NATS_OK) {
    log::warn("nats: {}", describe(s, "list task records to rescue " + dead));
    return false;
  }
  // The watcher delivers every current record, then a null entry; anything else ends the listing early.
  bool listed = false;
  for (;;) {
    kvEntry* e = nullptr;
    // The failpoint cuts a listing of another host's records (not this host's own, at its start).
    const bool cut = dead != options.worker_id && failpoint("nats.rescue.cut_listing");
    const natsStatus s = cut ? NATS_TIMEOUT : kvWatcher_Next(&e, w, 5'000);
    if (s != NATS_OK || e == nullptr) {
      listed = s == NATS_OK;
      if (!listed) log::warn("nats: {}", describe(s, "list task records to rescue " + dead));
      break;
    }
    auto record = decode_record(std::string_view(static_cast<const char*>(kvEntry_Value(e)),
                                                 static_cast<size_t>(kvEntry_ValueLen(e))));
    if (record && record->owner == dead && !record->ack_on_completion) {
      found.push_back(Found{std::move(*record), kvEntry_Revision(e)});
    }
    kvEntry_Destroy(e);
  }
  kvWatcher_Destroy(w);
  if (dead == options.worker_id) {
    // Our previous run's records: skip what this run already holds (not possible at start, but cheap).
    std::lock_guard lock(mu);
    std::erase_if(found, [&](const Found& f) { return inflight.count(f.record.task_id) > 0; });
  }
  if (!found.empty()) log::info("nats: rescuing {} task(s) of {}", found.size(), dead);
  bool all = listed;
  for (auto& f : found) {
    try {
      all = rescue_task(std::move(f.record), f.revision) && all;
    } catch (const std::exception& e) {
      log::warn("nats: rescue of a task of {}: {}", dead, e.what());
      all = false;
    }
  }
  return all;
}

bool NatsTransport::Impl::rescue_task(TaskRecord rec, uint64_t revision) {
  std::shared_lock intake(intake_mu);
  if (draining) return false;  // left to whoever wins the lease this host lets fall silent
  if (store->completion_exists(rec.task_id)) {
    store->erase(Names::task_key(rec.task_id), revision);
    return true;
  }
  const std::string dead = rec.owner;
  v1::TaskAssignment a;
  const bool parsed = !rec.assignment.empty() && a.ParseFromString(rec.assignment) && a.has_execute();
  const auto binding = registry->resolve(rec.kind);
  if (!parsed) {
    end_unresumed(rec, revision, "orphaned",
                  fmt::format("task '{}' was running on {}, which died; its assignment was not recorded", rec.task_id,
                              rec.owner));
    return true;
  }
  if (!binding) {
    hand_back_rescued(std::move(rec), revision);
    return true;
  }
  // Each host that took the record started it once (attempt + 1 each time). A task that every host dies
  // running — a plugin that crashes its host on resuming it — would otherwise take down one host after
  // another: the count that poisons a redelivered task (intake.cpp) stops the rescues too.
  const uint32_t base = std::max<uint32_t>(1, a.execute().attempt());
  const uint64_t starts = rec.attempt >= base ? uint64_t{rec.attempt} - base + 1 : 1;
  if (starts >= options.max_deliver) {
    end_unresumed(rec, revision, "poisoned",
                  fmt::format("task '{}' was started {} time{} and the host running it died each time (the last "
                              "was {}); max_deliver {}: attempt {} is not started",
                              rec.task_id, starts, starts == 1 ? "" : "s", rec.owner, options.max_deliver,
                              rec.attempt + 1));
    return true;
  }
  const uint32_t attempt = rec.attempt + 1;
  a.mutable_execute()->set_attempt(attempt);
  Inflight f;
  f.task_id = rec.task_id;
  f.kind = rec.kind;
  f.attempt = attempt;
  f.assignment = std::move(rec.assignment);  // unchanged: its attempt stays the base counted above
  f.acked = true;  // there is no delivery: the record is the task
  f.received = std::chrono::steady_clock::now();
  f.last_progress_ack = f.received;
  f.created_unix_ms = rec.created_unix_ms;
  f.checkpoint = rec.checkpoint;
  f.resume_control(rec.control);
  const uint64_t rev = store->write_task(record_of(f), revision);
  if (rev == 0) return true;  // another survivor took it
  f.record_rev = rev;
  f.record_written = true;
  // A rescuer that dies with the record taken and the rest not: its lease on the dead host falls silent.
  if (dead != options.worker_id && failpoint("nats.rescue.die_after_take")) std::raise(SIGKILL);
  {
    std::lock_guard lock(mu);
    inflight.emplace(f.task_id, f);
  }
  reattached++;
  log::info("nats: re-attaching task {} of {} as attempt {}", rec.task_id, dead, attempt);
  const auto outcome = router->assign(a, tasks::Resume{true, rec.checkpoint});
  after_assign(rec.task_id, attempt, outcome, 0, {}, rec.control);
  return true;
}

void NatsTransport::Impl::hand_back_rescued(TaskRecord rec, uint64_t revision) {
  // No plugin here serves the kind, but another host may, now or later: the winner of a dead host's
  // lease is whoever saw it die first, not the host best placed to resume its tasks. The record goes
  // first, by compare-and-set: no owner (so the dead host's late writes are fenced, a worker id that
  // comes back alive holds nothing, and no later rescue of it finds the task again), `rescued_from` set,
  // attempt, checkpoint and control mark kept. Then the assignment goes back to its kind's queue,
  // marked; the host that takes it (only hosts serving the kind pull it) re-attaches the task from the
  // record as attempt + 1 (intake: claim_redelivered). With no such host alive it waits in the queue,
  // as any task of a kind no host serves does.
  const std::string dead = rec.owner;
  rec.rescued_from = dead;
  rec.owner.clear();
  rec.state = v1::PENDING;
  rec.updated_unix_ms = unix_ms_now();
  const uint64_t handed = store->write_task(rec, revision);
  if (handed == 0) return;  // someone else changed it first: theirs
  const std::string subject = names.task_subject(rec.kind);
  natsMsg* msg = nullptr;
  if (natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, rec.assignment.data(),
                                    static_cast<int>(rec.assignment.size()));
      s != NATS_OK) {
    throw NatsError(describe(s, "hand task " + rec.task_id + " back to its queue"), s, 0);
  }
  natsMsgHeader_Set(msg, kRescuedHeader, dead.c_str());
  // One copy however often this is tried (the record write above already makes a second try rare).
  const std::string msg_id = fmt::format("{}:rescued:{}", rec.task_id, rec.attempt);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id.c_str();
  jsPubAck* pa = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus s = js_PublishMsg(&pa, connection->js(), msg, &po, &code);
  natsMsg_Destroy(msg);
  const bool duplicate = pa != nullptr && pa->Duplicate;
  jsPubAck_Destroy(pa);
  if (s != NATS_OK) {
    // Not queued: put the record back as the dead host left it, so that the rescue of that host, tried
    // again (the throw), finds the task once more.
    rec.owner = dead;
    rec.rescued_from.clear();
    rec.state = v1::RUNNING;
    try {
      store->write_task(rec, handed);
    } catch (const std::exception& e) {
      log::error("nats: task {} of {} is handed back but not queued, and its record could not be restored: {}",
                 rec.task_id, dead, e.what());
    }
    throw NatsError(describe(s, "hand task " + rec.task_id + " back to its queue", code), s, code);
  }
  if (duplicate) return;
  handed_to_queue++;
  log::info("nats: task {} of {}: no plugin on {} serves kind '{}'; handed back to its queue for a host that does",
            rec.task_id, dead, options.worker_id, rec.kind);
}

void NatsTransport::Impl::end_unresumed(const TaskRecord& rec, uint64_t revision, const std::string& error_kind,
                                        const std::string& message) {
  TaskRecord ended = rec;
  ended.owner = options.worker_id;
  ended.attempt = rec.attempt + 1;
  ended.updated_unix_ms = unix_ms_now();
  const uint64_t rev = store->write_task(ended, revision);
  if (rev == 0) return;
  v1::TaskCompletion c;
  c.set_task_id(rec.task_id);
  c.set_attempt(rec.attempt);
  c.set_state(v1::FAILED);
  c.set_worker_id(options.worker_id);
  c.set_kind(rec.kind);
  auto* err = c.mutable_error();
  err->set_code(v1::WORKER_ERROR);
  err->set_kind(error_kind);
  err->set_message(message);
  Inflight f;
  f.task_id = rec.task_id;
  f.kind = rec.kind;
  f.attempt = ended.attempt;
  f.acked = true;
  f.record_rev = rev;
  f.record_written = true;
  f.completion_sent = true;
  f.received = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu);
    inflight.emplace(f.task_id, std::move(f));
  }
  if (error_kind == "orphaned") orphaned++;
  log::warn("nats: {}", err->message());
  batcher->completion(c);
}

}  // namespace taskhost::transport::nats
