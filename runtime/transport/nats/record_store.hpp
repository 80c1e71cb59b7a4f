// Synchronous, compare-and-set access to the KV bucket (task records and host keys) and the one
// question asked of the events stream ("is there a completion for this task?").
//
// Writes are published straight to the bucket's subject with an expected last sequence, which is what
// kvStore_Update does, but also for deletes, and with "no message yet" and "after a delete" handled
// alike: the revision a caller expects is whatever read() returned, tombstones included.
//
// Thread rule: every method makes synchronous requests: call from the transport's worker thread (or any
// thread that is not a cnats callback thread). Errors other than "not found" and "conflict" throw
// NatsError.
#pragma once

#include "transport/nats/connection.hpp"
#include "transport/nats/names.hpp"
#include "transport/nats/wire.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::transport::nats {

class RecordStore {
 public:
  // `patient`: for the CLI's client, which waits a stream's leader election out (kClientElectionWait),
  // reads asked again after a timeout too; a host gives up sooner (kHostElectionWait, connection.hpp).
  RecordStore(Connection& connection, const Names& names, bool patient = false)
      : connection_(connection), names_(names), patient_(patient) {}

  struct Raw {
    bool exists = false;    // the key has a value (not deleted)
    uint64_t revision = 0;  // sequence of the key's last message, tombstones included; 0 = never written
    std::string value;
  };
  Raw read(const std::string& key) const;
  // read(), asked again until `until` while it times out or finds no responders (retry_read): for a
  // host's first read at start, which may meet the bucket still electing its leader.
  Raw read_until(const std::string& key, std::chrono::steady_clock::time_point until) const;
  // Stores `value` if the key's last revision is still `expected`; returns the new revision, or 0 when
  // someone else wrote first.
  uint64_t write(const std::string& key, std::string_view value, uint64_t expected) const;
  // Deletes if the key's last revision is still `expected`; false when someone wrote first. The key then
  // leaves nothing in the bucket (compact()).
  bool erase(const std::string& key, uint64_t expected) const;
  // Removes the key's messages up to and including `through` (its delete marker) from the bucket's
  // stream. Why: a delete in a KV bucket is a marker message that stays for ever, one per finished task,
  // so the bucket would grow without bound. Bounded by sequence, so a write made after `through` (another
  // host taking the key) survives; and a writer still expecting an older revision is refused as before,
  // since the key's last sequence is no longer the one it expects. Best effort: failures are logged.
  void compact(const std::string& key, uint64_t through) const;

  struct Task {
    TaskRecord record;
    uint64_t revision = 0;
  };
  // The task's record, if it has one (not deleted). `revision` is set either way (for a later write).
  std::optional<Task> task(const std::string& task_id, uint64_t* revision = nullptr) const;
  uint64_t write_task(const TaskRecord& record, uint64_t expected) const;

  bool completion_exists(const std::string& task_id) const;
  // The stored completion batch of the task (events + completion), or nullopt.
  std::optional<std::string> completion_batch(const std::string& task_id) const;
  // The task's latest events batch (not the completion one), or nullopt.
  std::optional<std::string> last_events_batch(const std::string& task_id) const;

 private:
  std::optional<std::string> last_on(const std::string& stream, const std::string& subject) const;
  // Runs a read / a write through the retry this store's patience calls for.
  template <typename Call>
  natsStatus reading(Call&& call) const;
  template <typename Call>
  Raw read_with(const std::string& key, Call&& retry) const;
  template <typename Call>
  natsStatus writing(Call&& call) const;
  Connection& connection_;
  const Names& names_;
  const bool patient_;
};

}  // namespace taskhost::transport::nats
