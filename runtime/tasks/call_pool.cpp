#include "tasks/call_pool.hpp"

#include "common/log.hpp"
#include "tasks/task.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <exception>

namespace taskhost::tasks {

CallPool::CallPool(size_t core_threads, size_t max_threads)
    : pool_(std::max<size_t>(1, core_threads)),
      max_threads_(std::max(std::max<size_t>(1, core_threads), max_threads)),
      threads_(std::max<size_t>(1, core_threads)) {
  monitor_ = std::thread([this] { watch(); });
}

void CallPool::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !monitor_.joinable()) return;
    stopping_ = true;
  }
  stopping_flag_.store(true, std::memory_order_release);
  cv_.notify_all();
  if (monitor_.joinable()) monitor_.join();
  pool_.stop();
  pool_.join();
  // Only the monitor adds threads, and it has ended: the list is final.
  for (auto& t : added_) {
    if (t.joinable()) t.join();
  }
}

void CallPool::watch() {
  uint64_t last_finished = finished_.load(std::memory_order_relaxed);
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, kCheckInterval, [&] { return stopping_; })) {
    // Relaxed reads of three totals are not one instant; the differences are clamped at zero.
    const uint64_t now_finished = finished_.load(std::memory_order_relaxed);
    const uint64_t started = started_.load(std::memory_order_relaxed);
    const uint64_t posted = posted_.load(std::memory_order_relaxed);
    const uint64_t in_calls = started > now_finished ? started - now_finished : 0;
    const size_t threads = threads_.load(std::memory_order_relaxed);
    const bool starved = in_calls >= threads && posted > started && now_finished == last_finished;
    last_finished = now_finished;
    if (!starved || threads >= max_threads_) continue;
    // attach() makes the new thread one of the pool's until stop().
    added_.emplace_back([this] { pool_.attach(); });
    threads_.store(threads + 1, std::memory_order_relaxed);
    log::info("plugin calls: all {} pool threads were inside calls for {} ms while others waited (a plugin "
              "call that blocks?); added one",
              threads, kCheckInterval.count());
  }
}

thread_local const Strand* Strand::current_ = nullptr;

void Strand::post(const TaskPtr& self, Call call) {
  pool_.queued();
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(call));
    if (scheduled_) return;  // the running or queued turn will take it, in order
    scheduled_ = true;
  }
  schedule(self);
}

void Strand::schedule(const TaskPtr& self) {
  boost::asio::post(pool_.executor(), [this, self] { run_turn(self); });
}

void Strand::run_turn(const TaskPtr& self) {
  const Strand* outer = current_;
  current_ = this;
  for (int n = 0; n < kCallsPerTurn && !(n > 0 && pool_.stopping()); ++n) {
    Call call;
    {
      std::lock_guard lock(mu_);
      if (head_ == queue_.size()) {
        queue_.clear();
        head_ = 0;
        scheduled_ = false;
        current_ = outer;
        return;
      }
      call = std::move(queue_[head_++]);
    }
    pool_.started();
    // A host call that throws is a host bug; log it and keep the pool's thread serving other tasks.
    try {
      call(self);
    } catch (const std::exception& e) {
      log::error("task call failed with an exception: {}", e.what());
    } catch (...) {
      log::error("task call failed with an unknown exception");
    }
    pool_.finished();
  }
  current_ = outer;
  // More may be waiting: queue the next turn behind the other strands' work (after stop() the pool
  // drops it, and with it the calls not started, as it drops every other queued operation).
  schedule(self);
}

}  // namespace taskhost::tasks
