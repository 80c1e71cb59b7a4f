// A bounded memory of ended tasks: enough to answer status, to tell "already ended" from "unknown", and
// to refuse a duplicate of a completed attempt. Durable history is the transport's job, not the router's.
//
// A ring of `capacity` slots (oldest overwritten first) with an open-addressing index keyed by a view of
// each slot's own task id: a task's retirement copies no id and allocates nothing once the ring is full.
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

  // Adds or replaces the snapshot of its task id; a replaced one keeps its place in the eviction order.
  void add(TaskSnapshot snapshot) {
    // The index entry of the slot being replaced or evicted goes first: its key views the id that the
    // new snapshot is about to overwrite.
    size_t slot = 0;
    if (auto it = index_.find(snapshot.task_id); it != index_.end()) {
      slot = it->second;
      index_.erase(it);
    } else if (slots_.size() < capacity_) {
      slot = slots_.size();
      slots_.emplace_back();  // a deque: earlier slots (and the views of their ids) stay where they are
    } else {
      slot = oldest_;
      oldest_ = (oldest_ + 1) % capacity_;
      index_.erase(std::string_view(slots_[slot].task_id));
    }
    slots_[slot] = std::move(snapshot);
    index_.emplace(slots_[slot].task_id, slot);
  }
  const TaskSnapshot* find(std::string_view id) const {
    auto it = index_.find(id);
    return it == index_.end() ? nullptr : &slots_[it->second];
  }
  // Oldest first.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (size_t i = 0; i < slots_.size(); ++i) fn(slots_[(oldest_ + i) % slots_.size()]);
  }

 private:
  size_t capacity_;
  std::deque<TaskSnapshot> slots_;
  size_t oldest_ = 0;  // the slot overwritten next once the ring is full (0 until then)
  using Index = boost::unordered_flat_map<std::string_view, size_t, std::hash<std::string_view>>;
  Index index_;
};

}  // namespace taskhost::tasks
