#include "transport/nats/host_liveness.hpp"

#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "common/unix_time.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace taskhost::transport::nats {

namespace {
// A host key's value is the time of the beat, or this prefix and the rescuer's worker id.
constexpr std::string_view kLeasePrefix = "rescue lease held by ";
// ... or, once its host stopped cleanly leaving tasks in their records for another host, this prefix
// (HostLiveness::hand_over). A host of a version without it reads it as one more beat: it rescues the
// tasks all the same, once host_dead_after has passed.
constexpr std::string_view kLeftPrefix = "left with tasks to rescue at ";
}  // namespace

HostLiveness::HostLiveness(RecordStore& store, kvStore* kv, const NatsOptions& options)
    : store_(store), kv_(kv), options_(options) {}

HostLiveness::~HostLiveness() {
  if (watcher_ != nullptr) {
    kvWatcher_Stop(watcher_);
    kvWatcher_Destroy(watcher_);
  }
}

void HostLiveness::refuse_if_in_use() {
  const std::string key = Names::host_key(options_.worker_id);
  // At start the bucket may still be electing its leader (a cluster just formed or restarted): a read
  // that times out is asked again until connect_timeout, as connecting is.
  const auto until = Clock::now() + options_.connect_timeout;
  const RecordStore::Raw found = store_.read_until(key, until);
  // A lease, or the mark of a previous run that stopped cleanly: no live host writes this key.
  if (!found.exists || std::string_view(found.value).starts_with(kLeasePrefix) ||
      std::string_view(found.value).starts_with(kLeftPrefix)) {
    return;
  }
  // A beat under our id: left by a previous run that died (ours to resume), or written by a live host
  // that uses the same id — which would then run our tasks beside us. A live host beats every quarter
  // of host_dead_after: look once more after one and a half of those.
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(options_.host_dead_after) / 4;
  std::this_thread::sleep_for(interval + interval / 2);
  const RecordStore::Raw again = store_.read_until(key, until);
  if (again.exists && again.revision != found.revision && !std::string_view(again.value).starts_with(kLeasePrefix)) {
    throw NatsError(fmt::format("worker id '{}' is in use by another live host (its liveness key {} changed within "
                                "the last {} ms): give each host a worker id of its own (--worker-id, worker_id)",
                                options_.worker_id, key, (interval + interval / 2).count()),
                    NATS_ERR, 0);
  }
}

void HostLiveness::start() {
  refuse_if_in_use();
  beat();
  kvWatchOptions wo;
  kvWatchOptions_Init(&wo);
  wo.IgnoreDeletes = false;
  const std::string pattern = std::string(Names::host_key_prefix) + "*";
  check(kvStore_Watch(&watcher_, kv_, pattern.c_str(), &wo), "watch host keys");
  // The watcher first delivers every current key, then a null entry: load them all before anyone asks
  // alive(). Each is stamped as changed now, after this host's beat was sent, so none is proven silent yet.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    kvEntry* e = nullptr;
    natsStatus s = kvWatcher_Next(&e, watcher_, 1000);
    if (s == NATS_OK && e == nullptr) break;
    if (s == NATS_OK) take(e);
    if (Clock::now() > deadline) break;
  }
}

void HostLiveness::beat() {
  const auto started = Clock::now();
  const std::string key = Names::host_key(options_.worker_id);
  const std::string value = std::to_string(unix_ms_now());
  // Remembered until answered: a beat whose answer is lost (a timeout around a reconnect) may have been
  // stored all the same, and then the next beat's compare-and-set meets it.
  unanswered_beats_.push_back(value);
  if (unanswered_beats_.size() > 4) unanswered_beats_.erase(unanswered_beats_.begin());
  uint64_t rev = store_.write(key, value, own_revision_);
  if (rev != 0 && own_revision_ != 0 && failpoint("nats.liveness.lose_beat_answer")) {
    throw std::runtime_error("write KV key " + key + ": the answer was lost (failpoint)");
  }
  if (rev == 0) {
    const RecordStore::Raw now = store_.read(key);
    const bool ours = now.exists && std::find(unanswered_beats_.begin(), unanswered_beats_.end(), now.value) !=
                                        unanswered_beats_.end();
    if (ours) {
      // Our own beat, stored by an attempt whose answer never came: nobody else touched the key.
      rev = now.revision;
    } else {
      // Our key is not what we last wrote: a previous run of this worker id left it, another host
      // declared us dead (a lease on it, or deleted it), or a restarted server lost our later beats
      // (a plain beat is there: only this worker id writes those). Either way, write over what is there.
      const bool another_host = !now.exists || now.value.starts_with(kLeasePrefix);
      if (own_revision_ != 0 && another_host) {
        // Declared dead while this host was stopped or cut off: its tasks may be another host's now, or
        // finished. Counted before this beat takes the key back (vouched()), so the transport holds its
        // writes until it has checked each task (NatsTransport::Impl::check_ownership).
        times_taken_.fetch_add(1);
        log::warn("nats: host key of {} was taken by another host ({}); writing it again", options_.worker_id,
                  now.exists ? "a lease on it" : "deleted");
      } else if (own_revision_ != 0) {
        log::info("nats: host key of {} holds an older beat of ours (a restarted server lost later ones); "
                  "writing it again", options_.worker_id);
      }
      rev = store_.write(key, value, now.revision);
    }
  }
  if (rev != 0) {
    unanswered_beats_.clear();
    own_revision_ = rev;
    own_beat_started_ = started;
    vouched_beat_.store(started.time_since_epoch().count());
    last_beat_ = Clock::now();
  }
}

void HostLiveness::take(kvEntry* e) {
  const std::string key = kvEntry_Key(e);
  const std::string worker = decode_token(std::string_view(key).substr(Names::host_key_prefix.size()));
  const uint64_t revision = kvEntry_Revision(e);
  const bool put = kvEntry_Operation(e) == kvOp_Put;
  const std::string_view value(static_cast<const char*>(kvEntry_Value(e)), static_cast<size_t>(kvEntry_ValueLen(e)));
  const bool leased = put && value.starts_with(kLeasePrefix);
  const bool left = put && value.starts_with(kLeftPrefix);
  kvEntry_Destroy(e);
  std::lock_guard lock(mu_);
  if (worker == options_.worker_id) {
    // Our own beat came back: everything written before it was sent has been delivered.
    if (put && revision == own_revision_) proven_through_ = std::max(proven_through_, own_beat_started_);
  } else if (put) {
    hosts_[worker] = Seen{revision, Clock::now(), leased, left};
  } else {
    hosts_.erase(worker);
  }
}

void HostLiveness::drain_watcher() {
  for (;;) {
    kvEntry* e = nullptr;
    // cnats takes a timeout of 0 as an invalid argument (NATS_INVALID_ARG, nothing read), not as "don't
    // wait": 1 ms is the shortest wait that reads what is queued.
    const natsStatus s = kvWatcher_Next(&e, watcher_, 1);
    if (s != NATS_OK || e == nullptr) {
      if (e != nullptr) kvEntry_Destroy(e);
      if (s != NATS_OK && s != NATS_TIMEOUT && s != last_watch_status_) {
        log::warn("nats: {}", describe(s, "watch host keys"));
      }
      last_watch_status_ = s;
      return;
    }
    take(e);
  }
}

std::vector<std::string> HostLiveness::tick() {
  std::vector<std::string> rescue;
  try {
    // In milliseconds: host_dead_after is whole seconds, and 2 s / 4 in seconds is 0.
    const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(options_.host_dead_after) / 4;
    if (Clock::now() - last_beat_ >= interval) {
      const auto started = Clock::now();
      try {
        beat();
      } catch (...) {
        impaired_ = true;
        throw;
      }
      const bool dragged = Clock::now() - started > interval;
      if (impaired_ || dragged) {
        // The others' beats were held up like ours; their silence counts again from now.
        impaired_ = false;
        std::lock_guard lock(mu_);
        judge_from_ = Clock::now();
      }
    }
    keep_leases(true);
    drain_watcher();
    std::vector<std::pair<std::string, uint64_t>> dead;
    {
      std::lock_guard lock(mu_);
      for (const auto& [worker, seen] : hosts_) {
        if (!leases_.count(worker) && dead_locked(seen)) dead.emplace_back(worker, seen.revision);
      }
    }
    for (const auto& [worker, revision] : dead) {
      if (take_lease(worker, revision)) rescue.push_back(worker);
    }
  } catch (const std::exception& e) {
    log::warn("nats: liveness: {}", e.what());
  }
  return rescue;
}

std::string HostLiveness::lease_value() const { return std::string(kLeasePrefix) + options_.worker_id; }

bool HostLiveness::take_lease(const std::string& worker, uint64_t revision) {
  const uint64_t lease = store_.write(Names::host_key(worker), lease_value(), revision);
  std::lock_guard lock(mu_);
  bool left = false;
  if (auto it = hosts_.find(worker); it != hosts_.end()) left = it->second.left;
  // Either we rescue it, or the watcher tells us what happened instead (and brings our lease back too).
  hosts_.erase(worker);
  if (lease == 0) return false;
  leases_[worker] = Lease{lease, false};
  if (left) {
    log::info("nats: host {} stopped and left its running tasks to the fleet; rescuing them", worker);
  } else {
    log::warn("nats: host {} is dead (no liveness update for {} s); rescuing its tasks", worker,
              options_.host_dead_after.count());
  }
  return true;
}

void HostLiveness::keep_leases(bool may_renew) {
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(options_.host_dead_after) / 4;
  const bool renew = may_renew && Clock::now() - last_lease_renewal_ >= interval;
  if (renew) last_lease_renewal_ = Clock::now();
  std::map<std::string, Lease> held;
  {
    std::lock_guard lock(mu_);
    held = leases_;
  }
  for (const auto& [worker, lease] : held) {
    const std::string key = Names::host_key(worker);
    if (lease.released) {
      // Whether or not the delete wins (the host came back and wrote its key), the lease is over.
      store_.erase(key, lease.revision);
      std::lock_guard lock(mu_);
      leases_.erase(worker);
      continue;
    }
    if (!renew) continue;
    const uint64_t rev = store_.write(key, lease_value(), lease.revision);
    std::lock_guard lock(mu_);
    auto it = leases_.find(worker);
    if (it == leases_.end()) continue;
    if (rev != 0) {
      it->second.revision = rev;
    } else {
      // The host wrote its key again (it was only slow), or another host took the lease over from a
      // rescuer it found silent: either way the key is not ours to keep. Records already taken stay taken.
      log::warn("nats: the rescue lease on {} was taken by its host or another rescuer", worker);
      leases_.erase(it);
    }
  }
}

void HostLiveness::release(const std::string& worker_id) {
  std::lock_guard lock(mu_);
  if (auto it = leases_.find(worker_id); it != leases_.end()) it->second.released = true;
}

void HostLiveness::remove_self() {
  try {
    if (own_revision_ != 0) store_.erase(Names::host_key(options_.worker_id), own_revision_);
  } catch (const std::exception& e) {
    log::warn("nats: cannot remove host key: {}", e.what());
  }
}

bool HostLiveness::hand_over() {
  try {
    if (own_revision_ == 0) return false;
    const uint64_t rev = store_.write(Names::host_key(options_.worker_id), std::string(kLeftPrefix) +
                                                                            std::to_string(unix_ms_now()),
                                      own_revision_);
    if (rev != 0) own_revision_ = rev;
    return rev != 0;
  } catch (const std::exception& e) {
    log::warn("nats: cannot mark host key as left: {}", e.what());
    return false;
  }
}

void HostLiveness::leave() {
  try {
    keep_leases(false);  // deletes the released ones
  } catch (const std::exception& e) {
    log::warn("nats: cannot end the rescue leases: {}", e.what());
  }
  std::lock_guard lock(mu_);
  for (const auto& [worker, lease] : leases_) {
    if (!lease.released) log::warn("nats: leaving the rescue of {} to another host", worker);
  }
}

bool HostLiveness::alive(const std::string& worker_id) const {
  if (worker_id == options_.worker_id) return true;
  std::lock_guard lock(mu_);
  auto it = hosts_.find(worker_id);
  return it != hosts_.end() && !it->second.leased && !dead_locked(it->second);
}

}  // namespace taskhost::transport::nats
