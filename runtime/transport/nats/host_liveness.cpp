#include "transport/nats/host_liveness.hpp"

#include "common/log.hpp"
#include "common/unix_time.hpp"

#include <string_view>

namespace taskhost::transport::nats {

HostLiveness::HostLiveness(RecordStore& store, kvStore* kv, const NatsOptions& options)
    : store_(store), kv_(kv), options_(options) {}

HostLiveness::~HostLiveness() {
  if (watcher_ != nullptr) {
    kvWatcher_Stop(watcher_);
    kvWatcher_Destroy(watcher_);
  }
}

void HostLiveness::start() {
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
  uint64_t rev = store_.write(key, value, own_revision_);
  if (rev == 0) {
    // Our key is not what we last wrote: a previous run of this worker id left it, or another host
    // declared us dead and deleted it. Either way, write over what is there now.
    if (own_revision_ != 0) log::warn("nats: host key of {} was changed by another host; writing it again", options_.worker_id);
    rev = store_.write(key, value, store_.read(key).revision);
  }
  if (rev != 0) {
    own_revision_ = rev;
    own_beat_started_ = started;
    last_beat_ = Clock::now();
  }
}

void HostLiveness::take(kvEntry* e) {
  const std::string key = kvEntry_Key(e);
  const std::string worker = decode_token(std::string_view(key).substr(Names::host_key_prefix.size()));
  const uint64_t revision = kvEntry_Revision(e);
  const bool put = kvEntry_Operation(e) == kvOp_Put;
  kvEntry_Destroy(e);
  std::lock_guard lock(mu_);
  if (worker == options_.worker_id) {
    // Our own beat came back: everything written before it was sent has been delivered.
    if (put && revision == own_revision_) proven_through_ = std::max(proven_through_, own_beat_started_);
  } else if (put) {
    hosts_[worker] = Seen{revision, Clock::now()};
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
    drain_watcher();
    std::vector<std::pair<std::string, uint64_t>> dead;
    {
      std::lock_guard lock(mu_);
      for (const auto& [worker, seen] : hosts_) {
        if (dead_locked(seen)) dead.emplace_back(worker, seen.revision);
      }
    }
    for (const auto& [worker, revision] : dead) {
      const bool won = store_.erase(Names::host_key(worker), revision);
      {
        std::lock_guard lock(mu_);
        hosts_.erase(worker);  // either we rescue it, or the watcher tells us what happened instead
      }
      if (won) {
        log::warn("nats: host {} is dead (no liveness update for {} s); rescuing its tasks", worker,
                  options_.host_dead_after.count());
        rescue.push_back(worker);
      }
    }
  } catch (const std::exception& e) {
    log::warn("nats: liveness: {}", e.what());
  }
  return rescue;
}

void HostLiveness::remove_self() {
  try {
    if (own_revision_ != 0) store_.erase(Names::host_key(options_.worker_id), own_revision_);
  } catch (const std::exception& e) {
    log::warn("nats: cannot remove host key: {}", e.what());
  }
}

void HostLiveness::hand_back(const std::string& worker_id) {
  try {
    const std::string key = Names::host_key(worker_id);
    if (store_.write(key, std::to_string(unix_ms_now()), store_.read(key).revision) != 0) {
      log::warn("nats: leaving the rescue of {} to another host", worker_id);
    }
  } catch (const std::exception& e) {
    log::warn("nats: cannot hand back the rescue of {}: {}", worker_id, e.what());
  }
}

bool HostLiveness::alive(const std::string& worker_id) const {
  if (worker_id == options_.worker_id) return true;
  std::lock_guard lock(mu_);
  auto it = hosts_.find(worker_id);
  return it != hosts_.end() && !dead_locked(it->second);
}

}  // namespace taskhost::transport::nats
