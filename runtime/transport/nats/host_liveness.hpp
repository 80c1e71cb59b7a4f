// Which hosts are alive: every host rewrites its own KV key (host.<worker>) every host_dead_after / 4
// and watches all host keys. A host is dead when its key has been proven unchanged for host_dead_after,
// measured on this host's own clock (no cross-machine clock comparison):
//
//   - proven: silence counts only up to the start of this host's latest beat that its own watcher has
//     delivered back. The bucket is one ordered stream, so every write that landed before that beat has
//     been seen; a lagging or stalled watcher proves nothing and declares nobody dead.
//   - unchanged: from when the other host's last change arrived here, or from when this host's own
//     beats became prompt again, whichever is later. While a beat fails or takes longer than a beat
//     interval (a server stall, a leader election) every host's writes are held up alike, and the
//     updates proving the others alive arrive only after this host's own.
//
// Exactly one survivor rescues a dead host at a time: tick() overwrites the dead host's key with a
// lease ("rescuing, held by <this host>") by compare-and-set on the revision it last saw; only the host
// whose write succeeds gets the worker id back from tick() and rescues its tasks. The rescuer renews the
// lease like its own beat until release() says every record is handled, then deletes the key. A
// rescuer that dies or leaves mid-way stops renewing: its lease falls silent like any host key, and
// another survivor wins it and rescues what is left. If the "dead" host was only slow, its next beat
// finds its key changed and writes it again, which ends the lease (its tasks already taken over stay
// taken; its own writes for them are fenced).
//
// Thread rule: start(), tick(), remove_self() and leave() from one thread at a time (the transport's
// liveness thread, or its owner once that thread has stopped); alive() and release() from any thread.
#pragma once

#include "transport/nats/nats_options.hpp"
#include "transport/nats/record_store.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace taskhost::transport::nats {

class HostLiveness {
 public:
  using Clock = std::chrono::steady_clock;
  HostLiveness(RecordStore& store, kvStore* kv, const NatsOptions& options);
  ~HostLiveness();
  HostLiveness(const HostLiveness&) = delete;
  HostLiveness& operator=(const HostLiveness&) = delete;

  // Writes this host's key and loads every current host key. Throws NatsError, also when another live
  // host beats under this worker id (found by watching the key for one beat interval, which only a key
  // left by a previous run of this id costs: a clean exit deletes it).
  void start();
  // Refreshes this host's key when due, takes in changes of the others, and returns the dead hosts
  // this host won the right to rescue. Never throws (a failure is retried on the next tick).
  std::vector<std::string> tick();
  // Deletes this host's key (clean exit with nothing left to rescue).
  void remove_self();
  // A clean exit that leaves tasks running in their records (a drain detached them): says so in this
  // host's key, which every other host then takes for dead at once, without waiting out
  // host_dead_after, and the first to win its lease rescues the records (rescue.cpp), as a dead host's.
  // A key deleted instead would make the others forget this host, and nobody would rescue them.
  // False when the key is no longer this host's to write (a rescuer's lease is on it already).
  // Never throws.
  bool hand_over();
  // Every record of `worker_id`, a dead host this one holds the lease of, is handled: the next tick()
  // deletes its key. Never throws.
  void release(const std::string& worker_id);
  // This host is leaving (its liveness thread has stopped): deletes the keys of the leases released, and
  // leaves the others to fall silent, so another host rescues what is left. Never throws.
  void leave();

  // This host itself always counts as alive; another host unless it is proven dead (see above), under
  // a rescuer's lease, or unknown here.
  bool alive(const std::string& worker_id) const;

  // Whether this host may still take for granted that it holds the tasks it runs (any thread): its key
  // was kept by an unbroken chain of its own beats, each a compare-and-set on the one before, and the
  // latest of them began less than three quarters of host_dead_after ago. Another host declares this
  // one dead only once its key has been silent for host_dead_after, counted from when a beat arrived
  // there, so a write sent while this holds was sent before anyone could have declared this host dead.
  // It stops holding by itself, on the clock, when this host was stopped or stalled (SIGSTOP, a paused
  // VM, a server out of reach): at once on waking, before the liveness thread had any chance to learn
  // what happened meanwhile. False before start().
  bool vouched(Clock::time_point now) const {
    const Clock::time_point beat{Clock::duration(vouched_beat_.load())};
    // In milliseconds: host_dead_after is whole seconds, and 2 s * 3 / 4 in seconds is 1.
    return now - beat < std::chrono::duration_cast<std::chrono::milliseconds>(options_.host_dead_after) * 3 / 4;
  }
  // How often this host found its key taken by another host (deleted, or a rescuer's lease on it): each
  // time, any task it runs may have been taken over or finished elsewhere. Counted before the beat that
  // takes the key back is vouched for, so whoever sees vouched() true and then reads this sees the
  // count that beat follows (any thread).
  uint64_t times_taken() const { return times_taken_.load(); }

 private:
  struct Seen {
    uint64_t revision = 0;
    Clock::time_point changed{};
    bool leased = false;  // the key holds a rescuer's lease: the host itself is dead
    bool left = false;    // the host left with tasks to rescue (hand_over): dead from the start
  };
  struct Lease {
    uint64_t revision = 0;  // of the last write of the lease
    bool released = false;  // every record handled: delete the key
  };
  void refuse_if_in_use();
  void take(kvEntry* e);  // one watcher entry: another host's change, or this host's own beat coming back
  void drain_watcher();
  void beat();
  std::string lease_value() const;
  void keep_leases(bool may_renew);  // renews the leases held when due, deletes the released ones
  // Writes the lease on a host judged dead, if its key is still at `revision`; true when this host won.
  bool take_lease(const std::string& worker_id, uint64_t revision);
  bool dead_locked(const Seen& seen) const {
    return seen.left || proven_through_ - std::max(seen.changed, judge_from_) > options_.host_dead_after;
  }

  RecordStore& store_;
  kvStore* kv_;
  const NatsOptions options_;
  kvWatcher* watcher_ = nullptr;
  // Liveness thread only.
  uint64_t own_revision_ = 0;            // of this host's last successful beat
  std::vector<std::string> unanswered_beats_;  // values of the latest beats not answered yet (at most 4)
  Clock::time_point own_beat_started_{};  // when that beat was sent
  Clock::time_point last_beat_{};
  Clock::time_point last_lease_renewal_{};
  bool impaired_ = false;  // the last beat failed: the bucket is out of this host's reach
  natsStatus last_watch_status_ = NATS_OK;  // what the watcher last answered (a new failure is logged once)
  mutable std::mutex mu_;
  std::map<std::string, Seen> hosts_;  // other hosts, by worker id
  std::map<std::string, Lease> leases_;  // dead hosts this one is rescuing, by worker id
  // Silence before this does not count (set when beats are prompt again after failing or dragging).
  Clock::time_point judge_from_{};
  // Every write to the bucket that landed before this time has been delivered by the watcher.
  Clock::time_point proven_through_{};
  // vouched(): when this host's latest beat that followed its previous one unbroken began (steady clock
  // ticks; 0, long past, until the first beat), and how often the key was found taken.
  std::atomic<Clock::rep> vouched_beat_{0};
  std::atomic<uint64_t> times_taken_{0};
};

}  // namespace taskhost::transport::nats
