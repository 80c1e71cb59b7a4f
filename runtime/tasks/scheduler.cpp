#include "tasks/scheduler.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <queue>
#include <thread>
#include <vector>

namespace taskhost::tasks {

struct Scheduler::Impl {
  struct Entry {
    Clock::time_point due;
    uint64_t order;  // FIFO among equal deadlines
    Callback callback;
    bool operator>(const Entry& other) const {
      return due != other.due ? due > other.due : order > other.order;
    }
  };
  void add(Entry entry);  // scheduler thread only
  void arm();             // scheduler thread only
  void fire();            // scheduler thread only

  boost::asio::io_context io;
  boost::asio::steady_timer timer{io};
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
  uint64_t next_order = 0;
  Clock::time_point armed_for = Clock::time_point::max();
  std::thread thread;
  bool stopped = false;
  std::atomic<int64_t> last_late_ns{0}, max_late_ns{0};  // written by the scheduler thread only
};

Scheduler::Scheduler() : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::thread([impl = impl_.get()] {
    auto guard = boost::asio::make_work_guard(impl->io);
    impl->io.run();
  });
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::schedule(Clock::time_point due, Callback callback) {
  boost::asio::post(impl_->io, [impl = impl_.get(), due, cb = std::move(callback)]() mutable {
    impl->add(Impl::Entry{due, impl->next_order++, std::move(cb)});
  });
}

void Scheduler::post(Callback callback) { boost::asio::post(impl_->io, std::move(callback)); }

void Scheduler::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->heap = {};
}

Scheduler::Lateness Scheduler::lateness() const {
  return {std::chrono::nanoseconds(impl_->last_late_ns.load(std::memory_order_relaxed)),
          std::chrono::nanoseconds(impl_->max_late_ns.load(std::memory_order_relaxed))};
}

void Scheduler::Impl::add(Entry entry) {
  heap.push(std::move(entry));
  arm();
}

void Scheduler::Impl::arm() {
  if (heap.empty()) return;
  const auto due = heap.top().due;
  if (due >= armed_for) return;  // already armed for an earlier or equal deadline
  armed_for = due;
  timer.expires_at(due);
  timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed for an earlier deadline, or stopped
    armed_for = Clock::time_point::max();
    fire();
  });
}

void Scheduler::Impl::fire() {
  const auto now = Clock::now();
  while (!heap.empty() && heap.top().due <= now) {
    const int64_t late = std::chrono::duration_cast<std::chrono::nanoseconds>(now - heap.top().due).count();
    last_late_ns.store(late, std::memory_order_relaxed);
    if (late > max_late_ns.load(std::memory_order_relaxed)) max_late_ns.store(late, std::memory_order_relaxed);
    Callback cb = std::move(const_cast<Entry&>(heap.top()).callback);
    heap.pop();
    cb();
  }
  arm();
}

}  // namespace taskhost::tasks
