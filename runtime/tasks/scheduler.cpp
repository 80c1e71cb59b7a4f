#include "tasks/scheduler.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

namespace taskhost::tasks {

Scheduler::Scheduler() : timer_(io_) {
  thread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(io_);
    io_.run();
  });
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::schedule(Clock::time_point due, Callback callback) {
  boost::asio::post(io_, [this, due, cb = std::move(callback)]() mutable {
    add(Entry{due, next_order_++, std::move(cb)});
  });
}

void Scheduler::post(Callback callback) { boost::asio::post(io_, std::move(callback)); }

void Scheduler::stop() {
  if (stopped_) return;
  stopped_ = true;
  io_.stop();
  if (thread_.joinable()) thread_.join();
  heap_ = {};
}

Scheduler::Lateness Scheduler::lateness() const {
  return {std::chrono::nanoseconds(last_late_ns_.load(std::memory_order_relaxed)),
          std::chrono::nanoseconds(max_late_ns_.load(std::memory_order_relaxed))};
}

void Scheduler::add(Entry entry) {
  heap_.push(std::move(entry));
  arm();
}

void Scheduler::arm() {
  if (heap_.empty()) return;
  const auto due = heap_.top().due;
  if (due >= armed_for_) return;  // already armed for an earlier or equal deadline
  armed_for_ = due;
  timer_.expires_at(due);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // re-armed for an earlier deadline, or stopped
    armed_for_ = Clock::time_point::max();
    fire();
  });
}

void Scheduler::fire() {
  const auto now = Clock::now();
  while (!heap_.empty() && heap_.top().due <= now) {
    const int64_t late = std::chrono::duration_cast<std::chrono::nanoseconds>(now - heap_.top().due).count();
    last_late_ns_.store(late, std::memory_order_relaxed);
    if (late > max_late_ns_.load(std::memory_order_relaxed)) max_late_ns_.store(late, std::memory_order_relaxed);
    Callback cb = std::move(const_cast<Entry&>(heap_.top()).callback);
    heap_.pop();
    cb();
  }
  arm();
}

}  // namespace taskhost::tasks
