// The host's one timer mechanism: every heartbeat and every cancel deadline of every task is an entry in
// one min-heap served by one steady_timer on one thread. No thread or timer object per task, and because
// this thread never calls plugin code, a plugin call that blocks cannot delay a heartbeat.
//
// Thread rule: schedule() and stop() are safe from any thread; callbacks run on the scheduler's thread,
// must be short, and must not call plugin code.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

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

  boost::asio::io_context io_;
  boost::asio::steady_timer timer_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
  uint64_t next_order_ = 0;
  Clock::time_point armed_for_ = Clock::time_point::max();
  std::thread thread_;
  bool stopped_ = false;
  std::atomic<int64_t> last_late_ns_{0}, max_late_ns_{0};  // written by the scheduler thread only
};

}  // namespace taskhost::tasks
