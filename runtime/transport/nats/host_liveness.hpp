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
  // Unknown hosts are dead.
  bool alive(const std::string& worker_id) const;

 private:
  struct Seen {
    uint64_t revision = 0;
    std::chrono::steady_clock::time_point changed{};
  };
  void drain_watcher();
  void beat();

  RecordStore& store_;
  kvStore* kv_;
  const NatsOptions options_;
  kvWatcher* watcher_ = nullptr;
  uint64_t own_revision_ = 0;
  std::chrono::steady_clock::time_point last_beat_{};
  mutable std::mutex mu_;
  std::map<std::string, Seen> hosts_;  // other hosts, by worker id
};

}  // namespace taskhost::transport::nats
