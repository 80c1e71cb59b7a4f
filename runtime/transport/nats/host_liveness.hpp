// Which hosts are alive: every host rewrites its own KV key (host.<worker>) every host_dead_after / 4
// and watches all host keys. A host whose key has not changed for host_dead_after, as measured on this
// host's own clock from when the change arrived (no cross-machine clock comparison), is dead.
//
// Exactly one survivor rescues a dead host: tick() tries to delete the dead host's key with
// compare-and-set on the revision it last saw; only the host whose delete succeeds gets the worker id
// back from tick() and rescues its tasks. If the "dead" host was only slow, its next write finds its key
// gone and it writes it again (its tasks have been taken over; its own writes for them are fenced).
//
// Thread rule: start() then tick()/remove_self() from one thread at a time (the transport's liveness
// thread); alive() from any thread.
#pragma once

#include "transport/nats/nats_options.hpp"
#include "transport/nats/record_store.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace taskhost::transport::nats {

class HostLiveness {
 public:
  HostLiveness(RecordStore& store, kvStore* kv, const NatsOptions& options);
  ~HostLiveness();
  HostLiveness(const HostLiveness&) = delete;
  HostLiveness& operator=(const HostLiveness&) = delete;

  // Writes this host's key and loads every current host key. Throws NatsError.
  void start();
  // Refreshes this host's key when due, takes in changes of the others, and returns the dead hosts
  // this host won the right to rescue. Never throws (a failure is retried on the next tick).
  std::vector<std::string> tick();
  // Deletes this host's key (clean exit with nothing left to rescue).
  void remove_self();

  // A host counts as alive when its key changed within host_dead_after, and this host itself always.
  // Unknown hosts are dead. Time in which this host could not write the bucket itself does not count
  // against others (see judge_from_).
  bool alive(const std::string& worker_id) const;

 private:
  struct Seen {
    uint64_t revision = 0;
    std::chrono::steady_clock::time_point changed{};
  };
  void drain_watcher();
  void beat();
  // When another host's silence starts to count: the later of its last change and judge_from_.
  std::chrono::steady_clock::time_point silent_since_locked(const Seen& seen) const {
    return std::max(seen.changed, judge_from_);
  }

  RecordStore& store_;
  kvStore* kv_;
  const NatsOptions options_;
  kvWatcher* watcher_ = nullptr;
  uint64_t own_revision_ = 0;
  std::chrono::steady_clock::time_point last_beat_{};
  bool blind_ = false;  // this host's last beat failed: the bucket is out of its reach (liveness thread only)
  mutable std::mutex mu_;
  std::map<std::string, Seen> hosts_;  // other hosts, by worker id
  // Set when this host's beats succeed again after failing: while the bucket was out of reach (a server
  // restart, a JetStream leader election) every host's beats failed alike, and the updates that prove
  // the others alive arrive only after. Judging them from their last change would declare live hosts
  // dead, and fail their tasks "orphaned".
  std::chrono::steady_clock::time_point judge_from_{};
};

}  // namespace taskhost::transport::nats
