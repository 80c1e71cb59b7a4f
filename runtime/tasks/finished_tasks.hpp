// A bounded memory of ended tasks: enough to answer status, to tell "already ended" from "unknown", and
// to refuse a duplicate of a completed attempt. Durable history is the transport's job, not the router's.
// Thread rule: not synchronized; the router guards it with its own mutex.
#pragma once

#include "tasks/router.hpp"

#include <deque>
#include <string>
#include <unordered_map>

namespace taskhost::tasks {

class FinishedTasks {
 public:
  explicit FinishedTasks(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  void add(TaskSnapshot snapshot) {
    const std::string id = snapshot.task_id;
    if (by_id_.insert_or_assign(id, std::move(snapshot)).second) order_.push_back(id);
    while (order_.size() > capacity_) {
      by_id_.erase(order_.front());
      order_.pop_front();
    }
  }
  const TaskSnapshot* find(std::string_view id) const {
    auto it = by_id_.find(std::string(id));
    return it == by_id_.end() ? nullptr : &it->second;
  }
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const auto& id : order_) fn(by_id_.at(id));
  }

 private:
  size_t capacity_;
  std::deque<std::string> order_;
  std::unordered_map<std::string, TaskSnapshot> by_id_;
};

}  // namespace taskhost::tasks
