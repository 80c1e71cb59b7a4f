// The worker pool that runs plugin calls, and the per-task strand that serializes them.
//
// Guarantees (the ones the router relies on): calls posted to one strand run one at a time, in post
// order, each on some pool thread; different strands run in parallel. stop() waits for the calls running;
// calls not started yet never run (they are dropped with the pool's queue, or with their task).
//
// Elastic: the pool starts with `core` threads and adds one (up to `max`) when every thread has been
// inside a turn for two check intervals (10 ms each), no turn finished while others waited, and no pool
// thread is runnable with less than half of the second interval on a CPU. So a plugin call that blocks
// (or computes for long) cannot stall the tasks behind it, while a pool that is merely short of CPU (a
// busy machine preempting its threads) does not grow: another thread would only queue for the same
// CPUs, and on a loaded machine the old rule grew the pool to its maximum. An added thread that finds
// nothing to do for kRetireAfter ends. The core is small on purpose: every idle pool thread makes each
// post a futex wake-up and a context switch, and on a 2-core host a second core thread measured as pure
// overhead (bench_e2e 0.21–0.30x with two, 0.38–0.53x with one; the README has the runs).
//
// Why not boost::asio::thread_pool (which this replaced): the pool only ever runs strand turns, and a
// thread that finds the queue empty should look again for a few microseconds before it sleeps. A
// submitting thread hands tasks over one at a time, each a few microseconds apart; asio's idle thread
// went to sleep at once, so nearly every hand-over paid a futex wake-up on the submitting thread (in
// bench_e2e, 5 % of that thread's time in the kernel's wake-up path alone) and a scheduler round trip
// before the pool thread ran. Here a turn is two words in a queue (no type-erased operation to allocate),
// and a thread that ran a turn spins up to kIdleSpin before it sleeps (one thread at a time); a pool
// with nothing to do sleeps.
#pragma once

#include <boost/container/small_vector.hpp>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace taskhost::tasks {

struct Task;
using TaskPtr = std::shared_ptr<Task>;
class Strand;

class CallPool {
  struct Turn {
    Strand* strand;
    TaskPtr self;
  };

 public:
  // The calls of one plugin (the router makes a lane per plugin). At most lane_limit() of a lane's turns
  // run at once; its further turns wait in the lane (not in the pool's queue) until one of them returns.
  // So a plugin whose calls block cannot take every pool thread: the others keep at least a quarter of
  // the pool's maximum, and its own waiting turns do not make the pool grow. Owned by the pool
  // (make_lane()); stable for the pool's life.
  class Lane {
   public:
    Lane() = default;
    Lane(const Lane&) = delete;
    Lane& operator=(const Lane&) = delete;

   private:
    friend class CallPool;
    std::atomic<size_t> running_{0};  // its turns on pool threads now (raised under mu_, lowered without)
    std::atomic<size_t> parked_{0};   // waiting_.size(), for a finishing turn to look at without mu_
    std::deque<Turn> waiting_;        // guarded by the pool's mu_
  };

  static constexpr std::chrono::milliseconds kCheckInterval{10};
  // How long a pool thread that just ran a turn looks for the next one before it sleeps.
  static constexpr std::chrono::microseconds kIdleSpin{50};
  // How long a thread added beyond the core waits for work before it ends.
  static constexpr std::chrono::seconds kRetireAfter{2};

  CallPool(size_t core_threads, size_t max_threads);
  ~CallPool() { stop(); }
  CallPool(const CallPool&) = delete;
  CallPool& operator=(const CallPool&) = delete;

  // Drops calls not started yet, waits for running calls, joins every thread. Idempotent.
  void stop();
  size_t threads() const { return threads_.load(std::memory_order_relaxed); }

  // Queues one turn of `strand` (Strand only). `self` keeps the strand's task alive until it ran.
  void run_turn_later(Strand* strand, TaskPtr self);

  // A new lane (for one plugin's tasks: Strand::set_lane). Lives as long as the pool.
  Lane* make_lane();
  size_t lane_limit() const { return lane_limit_; }

  // True once stop() began: a strand stops between calls instead of running the rest of its turn.
  bool stopping() const { return stopping_flag_.load(std::memory_order_acquire); }

 private:
  // Under mu_: takes `turn` for this thread unless its lane is full, in which case the turn waits in the
  // lane and false is returned.
  bool claim_locked(Turn& turn);
  // After a turn of `lane` returned: hands the lane's next waiting turn back to the queue, if any.
  void lane_done(Lane* lane);
  void requeue_parked_locked(Lane* lane);
  struct Worker {
    std::thread thread;
    std::atomic<pid_t> tid{0};  // its kernel thread id, once it runs (for the monitor's CPU check)
    bool extra = false;         // added beyond the core: ends after kRetireAfter without work
  };
  using Workers = std::list<Worker>;
  void work(Workers::iterator self);  // a pool thread
  void watch();                       // the monitor thread
  void add_thread_locked(bool extra);
  struct CpuSample {
    pid_t tid = 0;
    uint64_t on_cpu_ns = 0;  // 0: not sampled yet
    std::chrono::steady_clock::time_point at;
  };
  // True when some pool thread is runnable but had less than half the time since its sample on a CPU:
  // the pool is short of CPU, not of threads. Refreshes the samples. Called without mu_.
  static bool short_of_cpu(std::vector<CpuSample>& samples);

  const size_t max_threads_;
  const size_t lane_limit_;  // max_threads_ less a quarter of it (at least one thread for the other lanes)
  std::atomic<size_t> threads_{0};
  // Growth bookkeeping, kept by the pool threads per turn (never by the threads that post): turns in
  // progress are started - finished, and turns waiting are waiting_turns_.
  std::atomic<uint64_t> turns_started_{0};
  std::atomic<uint64_t> turns_finished_{0};
  std::atomic<bool> stopping_flag_{false};
  std::atomic<size_t> waiting_turns_{0};  // queue_.size(), for spinning threads to watch without the lock
  std::atomic<bool> spinning_{false};     // a pool thread is spinning for the next turn (at most one is)

  std::mutex mu_;  // guards everything below
  std::condition_variable work_cv_;  // a turn was queued, or stop()
  std::condition_variable monitor_cv_;
  std::deque<Turn> queue_;
  size_t sleepers_ = 0;  // pool threads waiting on work_cv_
  bool stopping_ = false;
  Workers workers_;                   // a list: each thread keeps its own entry's address
  std::vector<std::thread> retired_;  // extra threads that ended, to be joined (by the monitor or stop())
  std::deque<Lane> lanes_;            // a deque: make_lane() never moves the lanes handed out
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
  // Its turns count against `lane` from now on. Set once, before the first post (at admission).
  void set_lane(CallPool::Lane* lane) { lane_ = lane; }
  CallPool::Lane* lane() const { return lane_; }

 private:
  friend class CallPool;  // runs the turns it queued
  void schedule(const TaskPtr& self);  // one pool operation that runs this strand's next turn
  void run_turn(const TaskPtr& self);

  CallPool& pool_;
  CallPool::Lane* lane_ = nullptr;  // none: the turns are not counted against a lane
  std::mutex mu_;  // guards queue_, head_, scheduled_
  boost::container::small_vector<Call, 2> queue_;  // calls from head_ on are waiting; inline while few
  size_t head_ = 0;
  bool scheduled_ = false;  // a turn is queued on the pool or running
  static thread_local const Strand* current_;
};

}  // namespace taskhost::tasks
