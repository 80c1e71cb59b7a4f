// The worker pool that runs plugin calls (a Boost.Asio thread_pool), and the per-task strand that
// serializes them (our own, on that pool: see Strand for why not asio's).
//
// Guarantees (the ones the router relies on): calls posted to one strand run one at a time, in post
// order, each on some pool thread; different strands run in parallel. stop() waits for the calls running;
// calls not started yet never run (they are destroyed with the pool, or with their task).
//
// Elastic: the pool starts with `core` threads and adds one (up to `max`) whenever every thread has been
// inside a call for a whole check interval (10 ms) with no call finishing while others wait: a plugin
// call that blocks cannot stall the tasks behind it. Added threads stay until stop(). The core is small
// on purpose: every idle pool thread makes each post a futex wake-up and a context switch, and on a
// 2-core host a second core thread measured as pure overhead (bench_e2e 0.21–0.30x with two, 0.38–0.53x
// with one; the README has the runs).
//
// A hand-written pool (a spinning worker) was tried against this one in bench_e2e, same machine,
// interleaved runs: no measurable difference (0.21-0.41x vs 0.23-0.41x), so the well-kept library stays.
// Since assignments complete inline (no second hop), a task costs one post.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <boost/container/small_vector.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace taskhost::tasks {

struct Task;
using TaskPtr = std::shared_ptr<Task>;

class CallPool {
 public:
  static constexpr std::chrono::milliseconds kCheckInterval{10};

  CallPool(size_t core_threads, size_t max_threads);
  ~CallPool() { stop(); }
  CallPool(const CallPool&) = delete;
  CallPool& operator=(const CallPool&) = delete;

  // Drops calls not started yet, waits for running calls, joins every thread. Idempotent.
  void stop();
  boost::asio::thread_pool::executor_type executor() { return pool_.get_executor(); }
  size_t threads() const { return threads_.load(std::memory_order_relaxed); }

  // Bookkeeping for growth, kept by Strand::post around every call: three running totals, from which
  // the monitor derives the calls waiting (posted - started) and in progress (started - finished).
  void queued() { posted_.fetch_add(1, std::memory_order_relaxed); }
  void started() { started_.fetch_add(1, std::memory_order_relaxed); }
  void finished() { finished_.fetch_add(1, std::memory_order_relaxed); }
  // True once stop() began: a strand stops between calls instead of running the rest of its turn.
  bool stopping() const { return stopping_flag_.load(std::memory_order_acquire); }

 private:
  void watch();  // the monitor thread

  boost::asio::thread_pool pool_;
  const size_t max_threads_;
  std::atomic<size_t> threads_;
  std::atomic<uint64_t> posted_{0};  // calls posted (a waiting one sits in the pool's queue or behind its strand)
  std::atomic<uint64_t> started_{0};
  std::atomic<uint64_t> finished_{0};
  std::atomic<bool> stopping_flag_{false};

  std::mutex mu_;  // guards stopping_ and added_
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::thread> added_;  // threads attached to the pool after the start
  std::thread monitor_;
};

// One task's strand: its calls run one at a time, in post order, on the pool. Lives inside its Task.
//
// Hand-written rather than a boost::asio::strand because of what a task's strand costs per task: an
// asio strand allocates its implementation (and a shared_ptr block) and links it into the service's
// list under one service-wide mutex, again on destruction, and every post is two pool operations. Here
// the task creation thread and the pool thread retiring tasks contended on that service mutex. This one
// is a flag and a small inline queue under the task's own lock, and one pool operation per run of calls.
class Strand {
 public:
  using Call = std::function<void(const TaskPtr&)>;
  // Calls run per pool operation before the strand yields its thread to others (fairness: a task fed
  // a stream of steering must not hold a pool thread forever).
  static constexpr int kCallsPerTurn = 16;

  explicit Strand(CallPool& pool) : pool_(pool) {}
  Strand(const Strand&) = delete;
  Strand& operator=(const Strand&) = delete;

  // Queues `call` behind this strand's earlier calls. `self` is the task that owns this strand; the
  // pool operation holds it, so the task outlives its own calls. Calls never hold it themselves (it is
  // passed in), so a call dropped by stop() leaves no cycle behind.
  void post(const TaskPtr& self, Call call);
  // True on the pool thread currently running one of this strand's calls.
  bool running_in_this_thread() const { return current_ == this; }

 private:
  void schedule(const TaskPtr& self);  // one pool operation that runs this strand's next turn
  void run_turn(const TaskPtr& self);

  CallPool& pool_;
  std::mutex mu_;  // guards queue_, head_, scheduled_
  boost::container::small_vector<Call, 2> queue_;  // calls from head_ on are waiting; inline while few
  size_t head_ = 0;
  bool scheduled_ = false;  // a turn is queued on the pool or running
  static thread_local const Strand* current_;
};

}  // namespace taskhost::tasks
