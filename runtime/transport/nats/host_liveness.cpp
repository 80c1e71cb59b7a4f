#include "transport/nats/host_liveness.hpp"

#include "common/log.hpp"

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
  // alive(), so a live host is never mistaken for a dead one at startup.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    kvEntry* e = nullptr;
    natsStatus s = kvWatcher_Next(&e, watcher_, 1000);
    if (s == NATS_OK && e == nullptr) break;
    if (s == NATS_OK) {
      const std::string key = kvEntry_Key(e);
      const std::string worker = decode_token(std::string_view(key).substr(Names::host_key_prefix.size()));
      if (worker != options_.worker_id && kvEntry_Operation(e) == kvOp_Put) {
        std::lock_guard lock(mu_);
        hosts_[worker] = Seen{kvEntry_Revision(e), std::chrono::steady_clock::now()};
      }
      kvEntry_Destroy(e);
    }
    if (std::chrono::steady_clock::now() > deadline) break;
  }
}

void HostLiveness::beat() {
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
    last_beat_ = std::chrono::steady_clock::now();
  }
}

void HostLiveness::drain_watcher() {
  for (;;) {
    kvEntry* e = nullptr;
    if (kvWatcher_Next(&e, watcher_, 0) != NATS_OK || e == nullptr) {
      if (e != nullptr) kvEntry_Destroy(e);
      return;
    }
    const std::string key = kvEntry_Key(e);
    const std::string worker = decode_token(std::string_view(key).substr(Names::host_key_prefix.size()));
    if (worker != options_.worker_id) {
      std::lock_guard lock(mu_);
      if (kvEntry_Operation(e) == kvOp_Put) {
        hosts_[worker] = Seen{kvEntry_Revision(e), std::chrono::steady_clock::now()};
      } else {
        hosts_.erase(worker);
      }
    }
    kvEntry_Destroy(e);
  }
}

std::vector<std::string> HostLiveness::tick() {
  std::vector<std::string> rescue;
  try {
    if (std::chrono::steady_clock::now() - last_beat_ >= options_.host_dead_after / 4) {
      try {
        beat();
      } catch (...) {
        blind_ = true;
        throw;
      }
      if (blind_) {
        blind_ = false;
        std::lock_guard lock(mu_);
        judge_from_ = std::chrono::steady_clock::now();
      }
    }
    drain_watcher();
    std::vector<std::pair<std::string, uint64_t>> dead;
    {
      std::lock_guard lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      for (const auto& [worker, seen] : hosts_) {
        if (now - silent_since_locked(seen) > options_.host_dead_after) dead.emplace_back(worker, seen.revision);
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

bool HostLiveness::alive(const std::string& worker_id) const {
  if (worker_id == options_.worker_id) return true;
  std::lock_guard lock(mu_);
  auto it = hosts_.find(worker_id);
  return it != hosts_.end() && std::chrono::steady_clock::now() - silent_since_locked(it->second) <= options_.host_dead_after;
}

}  // namespace taskhost::transport::nats
