// One background thread that runs posted closures in order and a periodic tick between them: the home
// of everything in the transport that makes synchronous JetStream calls (KV reads, compare-and-set
// claims, rescues), so no cnats callback thread and no router thread ever waits for the network.
//
// Thread rule: post() is safe from any thread; closures and the tick run on the worker thread only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace taskhost::transport::nats {

class SerialWorker {
 public:
  SerialWorker(std::chrono::milliseconds period, std::function<void()> tick)
      : period_(period), tick_(std::move(tick)), thread_([this] { loop(); }) {}
  ~SerialWorker() { stop(); }
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  void post(std::function<void()> fn) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

  // Runs what is queued, then stops. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    auto next_tick = std::chrono::steady_clock::now() + period_;
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait_until(lock, next_tick, [&] { return stopping_ || !queue_.empty(); });
      while (!queue_.empty()) {
        auto fn = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        fn();
        lock.lock();
      }
      if (stopping_) return;
      if (std::chrono::steady_clock::now() >= next_tick) {
        lock.unlock();
        tick_();
        lock.lock();
        next_tick = std::chrono::steady_clock::now() + period_;
      }
    }
  }

  const std::chrono::milliseconds period_;
  std::function<void()> tick_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after everything above is initialized
};

}  // namespace taskhost::transport::nats
