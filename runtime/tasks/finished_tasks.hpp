// A bounded memory of ended tasks: enough to answer status, to tell "already ended" from "unknown", and
// to refuse a duplicate of a completed attempt. Durable history is the transport's job, not the router's.
//
// A ring of `capacity` slots (oldest overwritten first) with an open-addressing index keyed by a view of
// each slot's own task id. Retiring a task is on the pool thread's path for every task, so it is kept
// small: the snapshot is written straight into its slot (no temporary; strings reuse the slot's
// buffers), the id is hashed once (each slot keeps its id's hash for when it is evicted), and nothing is
// allocated once the ring is full.
//
// Thread rule: not synchronized; the router guards it with its own mutex.
#pragma once

#include "tasks/router.hpp"

#include <boost/unordered/unordered_flat_map.hpp>

#include <deque>
#include <functional>
#include <string_view>

namespace taskhost::tasks {

class FinishedTasks {
 public:
  explicit FinishedTasks(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // Records the snapshot of `task_id`: fill(slot) writes it in place, and must leave slot.task_id equal
  // to `task_id`. An entry for the same id is replaced and keeps its place in the eviction order.
  template <typename Fill>
  void put(std::string_view task_id, Fill&& fill) {
    const size_t hash = std::hash<std::string_view>{}(task_id);
    // The index entry of the slot being replaced or evicted goes first: its key views the id that the
    // new snapshot is about to overwrite.
    size_t slot = 0;
    if (auto it = index_.find(Key{task_id, hash}); it != index_.end()) {
      slot = it->second;
      index_.erase(it);
    } else if (slots_.size() < capacity_) {
      slot = slots_.size();
      slots_.emplace_back();  // a deque: earlier slots (and the views of their ids) stay where they are
    } else {
      slot = oldest_;
      oldest_ = (oldest_ + 1) % capacity_;
      index_.erase(Key{slots_[slot].snapshot.task_id, slots_[slot].hash});
    }
    Slot& s = slots_[slot];
    fill(s.snapshot);
    s.hash = hash;
    index_.emplace(Key{s.snapshot.task_id, hash}, slot);
  }
  const TaskSnapshot* find(std::string_view id) const {
    auto it = index_.find(Key{id, std::hash<std::string_view>{}(id)});
    return it == index_.end() ? nullptr : &slots_[it->second].snapshot;
  }
  // Drops the snapshot of `id`, if kept: its id may be used by a new task. Its slot stays in the ring,
  // empty, until its turn to be overwritten comes.
  void forget(std::string_view id) {
    auto it = index_.find(Key{id, std::hash<std::string_view>{}(id)});
    if (it == index_.end()) return;
    slots_[it->second].snapshot = TaskSnapshot{};  // an empty id: for_each skips it, no index key matches it
    index_.erase(it);
  }
  // Oldest first.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (size_t i = 0; i < slots_.size(); ++i) {
      const TaskSnapshot& s = slots_[(oldest_ + i) % slots_.size()].snapshot;
      if (!s.task_id.empty()) fn(s);
    }
  }

 private:
  struct Slot {
    TaskSnapshot snapshot;
    size_t hash = 0;  // of snapshot.task_id
  };
  // A key carries its hash, computed once per id.
  struct Key {
    std::string_view id;
    size_t hash;
    bool operator==(const Key& other) const { return id == other.id; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept { return k.hash; }
  };

  size_t capacity_;
  std::deque<Slot> slots_;
  size_t oldest_ = 0;  // the slot overwritten next once the ring is full (0 until then)
  boost::unordered_flat_map<Key, size_t, KeyHash> index_;
};

}  // namespace taskhost::tasks
