// One watcher of the local transport: a bounded queue of WatchItems (events and completions) that the
// transport fills from router threads and an API stream drains.
//
// The producer never blocks: a consumer that falls `capacity` items or `capacity_bytes` (serialized) behind
// is closed (overflowed) and its stream ends, saying so, instead of holding the router back or growing
// without bound. Both bounds: a task writing large output deltas fills memory long before 10,000 items
// (a stalled reader of 1 GB of output held 1.8 GB in the host before the item bound alone cut it).
//
// Thread rule: push/close from any thread; take/closed from any thread. `notify` runs on the pushing
// thread after each push or close and must only schedule work (e.g. post to an io_context).
#pragma once

#include "taskhost/v1/status.pb.h"

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace taskhost::transport::local {

class Subscription {
 public:
  Subscription(std::string task_filter, size_t capacity, size_t capacity_bytes, std::function<void()> notify);
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // The task this watcher follows; empty = every task.
  const std::string& task_filter() const { return task_filter_; }
  bool wants(const std::string& task_id) const { return task_filter_.empty() || task_filter_ == task_id; }

  void push(const v1::WatchItem& item);
  void close();

  // Everything queued since the last take, oldest first.
  std::vector<v1::WatchItem> take();
  bool closed() const;
  bool overflowed() const;
  // Why it overflowed (how far behind the reader was), once overflowed().
  std::string overflow_reason() const;

 private:
  const std::string task_filter_;
  const size_t capacity_;
  const size_t capacity_bytes_;
  const std::function<void()> notify_;
  mutable std::mutex mu_;
  std::vector<v1::WatchItem> items_;
  size_t bytes_ = 0;  // serialized size of items_
  std::string overflow_reason_;
  bool closed_ = false;
  bool overflowed_ = false;
};

}  // namespace taskhost::transport::local
