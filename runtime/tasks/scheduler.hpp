// The host's one timer mechanism: every heartbeat and every cancel deadline of every task is an entry in
// one min-heap served by one steady_timer on one thread. No thread or timer object per task, and because
// this thread never calls plugin code, a plugin call that blocks cannot delay a heartbeat.
//
// Thread rule: schedule() and stop() are safe from any thread; callbacks run on the scheduler's thread,
// must be short, and must not call plugin code.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace taskhost::tasks {

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;
  using Callback = std::function<void()>;

  Scheduler();
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `callback` at `due` (or at once if `due` passed).
  void schedule(Clock::time_point due, Callback callback);
  // Runs `callback` on the scheduler thread as soon as possible.
  void post(Callback callback);
  // Drops pending entries and joins the thread. Idempotent.
  void stop();

  // How late callbacks ran (now - due when fired; 0 for one due in the past when scheduled counts its
  // wait from then): the most recent and the largest since start. Any thread.
  struct Lateness {
    std::chrono::nanoseconds last{0};
    std::chrono::nanoseconds max{0};
  };
  Lateness lateness() const;

 private:
  // Asio, the heap and the thread live in scheduler.cpp: this header reaches most of the host (through
  // the router and the host), and Asio's headers alone cost every includer seconds of compile time.
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskhost::tasks
