#include "tasks/call_pool.hpp"

#include "common/crash_report.hpp"
#include "common/log.hpp"
#include "common/spin_wait.hpp"
#include "common/thread_sched.hpp"
#include "tasks/task.hpp"

#include <algorithm>
#include <exception>
#include <optional>
#include <system_error>

namespace taskhost::tasks {

CallPool::CallPool(size_t core_threads, size_t max_threads)
    : max_threads_(std::max(std::max<size_t>(1, core_threads), max_threads)),
      lane_limit_(std::max<size_t>(1, max_threads_ - std::max<size_t>(1, max_threads_ / 4))) {
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < std::max<size_t>(1, core_threads); ++i) add_thread_locked(false);
  }
  monitor_ = std::thread([this] { watch(); });
}

void CallPool::add_thread_locked(bool extra) {
  auto self = workers_.emplace(workers_.end());
  self->extra = extra;
  try {
    self->thread = std::thread([this, self] { work(self); });
  } catch (...) {
    workers_.erase(self);
    throw;
  }
  threads_.fetch_add(1, std::memory_order_relaxed);
}

void CallPool::stop() {
  std::vector<std::thread> joining;
  std::deque<Turn> dropped;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !monitor_.joinable()) return;
    stopping_ = true;
    stopping_flag_.store(true, std::memory_order_release);
  }
  work_cv_.notify_all();
  monitor_cv_.notify_all();
  // The monitor adds threads; once it has ended, no thread is added, and none retires (a retiring
  // thread checks stopping_ under mu_ first).
  if (monitor_.joinable()) monitor_.join();
  {
    std::lock_guard lock(mu_);
    joining.swap(retired_);
    for (auto& w : workers_) joining.push_back(std::move(w.thread));
  }
  for (auto& t : joining) {
    if (t.joinable()) t.join();
  }
  {
    std::lock_guard lock(mu_);
    workers_.clear();
    dropped.swap(queue_);  // released outside the lock: a task freed here may free more
    waiting_turns_.store(0, std::memory_order_relaxed);
    for (auto& lane : lanes_) {
      for (auto& turn : lane.waiting_) dropped.push_back(std::move(turn));
      lane.waiting_.clear();
      lane.parked_.store(0, std::memory_order_relaxed);
    }
  }
}

CallPool::Lane* CallPool::make_lane() {
  std::lock_guard lock(mu_);
  return &lanes_.emplace_back();
}

bool CallPool::claim_locked(Turn& turn) {
  Lane* lane = turn.strand->lane();
  if (lane == nullptr) return true;
  // seq_cst with lane_done: either this thread sees the running turn that is ending, or that turn's
  // thread sees the parked one. Never neither, which would leave a turn parked for good.
  if (lane->running_.load(std::memory_order_seq_cst) < lane_limit_) {
    lane->running_.fetch_add(1, std::memory_order_seq_cst);
    return true;
  }
  lane->waiting_.push_back(std::move(turn));
  lane->parked_.fetch_add(1, std::memory_order_seq_cst);
  if (lane->running_.load(std::memory_order_seq_cst) < lane_limit_) requeue_parked_locked(lane);
  return false;
}

void CallPool::requeue_parked_locked(Lane* lane) {
  if (lane->waiting_.empty()) return;
  // To the front: it has waited its turn already.
  queue_.push_front(std::move(lane->waiting_.front()));
  lane->waiting_.pop_front();
  lane->parked_.fetch_sub(1, std::memory_order_seq_cst);
  waiting_turns_.fetch_add(1, std::memory_order_release);
}

void CallPool::lane_done(Lane* lane) {
  lane->running_.fetch_sub(1, std::memory_order_seq_cst);
  if (lane->parked_.load(std::memory_order_seq_cst) == 0) return;  // the usual case: no lock
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    requeue_parked_locked(lane);
    wake = sleepers_ > 0;
  }
  if (wake) work_cv_.notify_one();
}

void CallPool::run_turn_later(Strand* strand, TaskPtr self) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Turn{strand, std::move(self)});
    waiting_turns_.fetch_add(1, std::memory_order_release);
    // A spinning thread takes a lone turn without a wake-up. Its "spinning" flag is cleared before it
    // takes mu_ to sleep, so a turn queued while it was still set is in the queue it then looks at.
    wake = sleepers_ > 0 && (queue_.size() > 1 || !spinning_.load(std::memory_order_relaxed));
  }
  if (wake) work_cv_.notify_one();
}

void CallPool::work(Workers::iterator self) {
  const crash_report::AltStack alt_stack;  // a plugin's stack overflow is noted too (crash_report.hpp)
  self->tid.store(current_thread_id(), std::memory_order_relaxed);
  bool just_ran = false;
  for (;;) {
    // Look again for a moment before sleeping: the next hand-over is usually microseconds away, and
    // catching it here costs the submitting thread no wake-up. One thread at a time: after a burst, a
    // dozen idle threads spinning together would only burn cores.
    bool idle = false;
    if (just_ran && spinning_.compare_exchange_strong(idle, true, std::memory_order_relaxed)) {
      const auto until = std::chrono::steady_clock::now() + kIdleSpin;
      int polls = 0;
      while (waiting_turns_.load(std::memory_order_acquire) == 0 && !stopping()) {
        if ((++polls & 63) == 0 && std::chrono::steady_clock::now() >= until) break;
        cpu_relax();
      }
      spinning_.store(false, std::memory_order_relaxed);
    }
    Turn turn;
    {
      std::unique_lock lock(mu_);
      for (bool claimed = false; !claimed;) {
        ++sleepers_;
        auto ready = [&] { return stopping_ || !queue_.empty(); };
        if (!self->extra) {
          work_cv_.wait(lock, ready);
        } else if (!work_cv_.wait_for(lock, kRetireAfter, ready)) {
          // An added thread with nothing to do for kRetireAfter: the burst that needed it is over.
          --sleepers_;
          retired_.push_back(std::move(self->thread));
          workers_.erase(self);
          threads_.fetch_sub(1, std::memory_order_relaxed);
          return;
        }
        --sleepers_;
        if (stopping_) return;  // what is still queued never runs (stop() drops it)
        turn = std::move(queue_.front());
        queue_.pop_front();
        waiting_turns_.fetch_sub(1, std::memory_order_relaxed);
        claimed = claim_locked(turn);  // false: its plugin's lane is full, and it waits there
      }
    }
    Lane* lane = turn.strand->lane();
    turns_started_.fetch_add(1, std::memory_order_relaxed);
    turn.strand->run_turn(turn.self);
    turns_finished_.fetch_add(1, std::memory_order_relaxed);
    if (lane != nullptr) lane_done(lane);
    just_ran = true;
  }
}

bool CallPool::short_of_cpu(std::vector<CpuSample>& samples) {
  const auto now = std::chrono::steady_clock::now();
  bool short_of_cpu = false;
  for (auto& sample : samples) {
    const auto seen = sample.tid == 0 ? std::nullopt : sample_thread(sample.tid);
    if (!seen) continue;  // not reported (or not running yet): judged by progress alone
    // Runnable, yet it had less than half the time on a CPU: it waits for one. (Asleep is blocked in
    // its call; runnable and on a CPU most of the time is a long computation: both merit a thread.)
    const auto elapsed_ns = static_cast<uint64_t>(std::chrono::nanoseconds(now - sample.at).count());
    if (sample.on_cpu_ns != 0 && seen->runnable && seen->on_cpu_ns - sample.on_cpu_ns < elapsed_ns / 2) {
      short_of_cpu = true;
    }
    sample.on_cpu_ns = seen->on_cpu_ns;
    sample.at = now;
  }
  return short_of_cpu;
}

void CallPool::watch() {
  uint64_t last_finished = turns_finished_.load(std::memory_order_relaxed);
  // Each pool thread's CPU time at the previous check, while the pool looks starved.
  std::vector<CpuSample> samples;
  bool armed = false;  // the previous check found the pool starved and took `samples`
  std::unique_lock lock(mu_);
  while (!monitor_cv_.wait_for(lock, kCheckInterval, [&] { return stopping_; })) {
    if (!retired_.empty()) {  // ended on their own: joining only collects them (outside mu_)
      std::vector<std::thread> ended;
      ended.swap(retired_);
      lock.unlock();
      for (auto& t : ended) t.join();
      lock.lock();
      if (stopping_) break;
    }
    // Relaxed reads of the totals are not one instant; the difference is clamped at zero. Turns waiting
    // are read under mu_ (the queue itself). A turn stuck in a blocking call finishes no turn.
    const uint64_t now_finished = turns_finished_.load(std::memory_order_relaxed);
    const uint64_t started = turns_started_.load(std::memory_order_relaxed);
    const uint64_t in_turns = started > now_finished ? started - now_finished : 0;
    const size_t threads = threads_.load(std::memory_order_relaxed);
    const bool starved = in_turns >= threads && !queue_.empty() && now_finished == last_finished;
    last_finished = now_finished;
    if (!starved || threads >= max_threads_) {
      armed = false;
      continue;
    }
    // Starved: blocked in calls, or only waiting for a CPU? The scheduler tells, over the next
    // interval (read without mu_: two small file reads per thread).
    if (!armed || samples.size() != workers_.size()) {
      samples.clear();
      for (const auto& w : workers_) samples.push_back(CpuSample{w.tid.load(std::memory_order_relaxed), 0, {}});
      armed = false;
    }
    lock.unlock();
    const bool cpu_short = short_of_cpu(samples);
    lock.lock();
    if (!armed) {  // first sample: decide at the next check, over one whole interval
      armed = true;
      continue;
    }
    if (cpu_short || stopping_) continue;
    armed = false;
    try {
      add_thread_locked(true);
    } catch (const std::system_error& e) {  // out of threads: keep serving with the ones there are
      log::error("plugin calls: all {} pool threads are inside calls and no thread could be added: {}", threads,
                 e.what());
      continue;
    }
    log::info("plugin calls: all {} pool threads were inside calls for {} ms while others waited (a plugin "
              "call that blocks?); added one",
              threads, 2 * kCheckInterval.count());
  }
}

thread_local const Strand* Strand::current_ = nullptr;

void Strand::post(const TaskPtr& self, Call call) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(call));
    if (scheduled_) return;  // the running or queued turn will take it, in order
    scheduled_ = true;
  }
  schedule(self);
}

void Strand::schedule(const TaskPtr& self) { pool_.run_turn_later(this, self); }

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
    // A host call that throws is a host bug; log it and keep the pool's thread serving other tasks.
    try {
      // A fatal signal inside the call names this task (common/crash_report.hpp).
      const crash_report::TaskScope scope(self->id, self->kind);
      call(self);
    } catch (const std::exception& e) {
      log::error("task call failed with an exception: {}", e.what());
    } catch (...) {
      log::error("task call failed with an unknown exception");
    }
  }
  current_ = outer;
  {
    std::lock_guard lock(mu_);
    if (head_ == queue_.size()) {  // the turn ended exactly on its last call: nothing to come back for
      queue_.clear();
      head_ = 0;
      scheduled_ = false;
      return;
    }
  }
  // More is waiting: queue the next turn behind the other strands' work (after stop() the pool drops
  // it, and with it the calls not started, as it drops every other queued operation).
  schedule(self);
}

}  // namespace taskhost::tasks
