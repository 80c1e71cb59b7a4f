#include "timer_scheduler.hpp"

#include <algorithm>
#include <chrono>
#include <string>

namespace timer_plugin {

namespace {

// Timers fired per round before the lock is taken again, so a burst of due timers cannot keep cancel,
// add and remove waiting for long.
constexpr size_t kMaxBatch = 256;

std::chrono::system_clock::time_point wall_time(int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

}  // namespace

TimerScheduler::TimerScheduler() : thread_([this] { run(); }) {}

TimerScheduler::~TimerScheduler() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool TimerScheduler::add(th_task_ref ref, taskhost::TaskSink sink, TimerPlan plan, bool resumed) {
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = entries_.try_emplace(ref);
    if (!inserted) return false;
    Entry& e = it->second;
    e.sink = sink;
    e.plan = plan;
    e.resumed = resumed;
    e.due_ms = plan.step_due(1);
    e.queued = true;
    queue_.emplace(e.due_ms, ref);
  }
  wake_.notify_one();
  return true;
}

std::optional<int> TimerScheduler::stop(th_task_ref ref) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(ref);
  if (it == entries_.end() || it->second.ended) return std::nullopt;
  it->second.ended = true;
  dequeue(ref, it->second);
  return it->second.reported;
}

std::optional<TimerPlan> TimerScheduler::remove(th_task_ref ref) {
  std::unique_lock lock(mu_);
  auto it = entries_.find(ref);
  if (it == entries_.end()) return std::nullopt;
  Entry& e = it->second;
  e.ended = true;
  dequeue(ref, e);
  idle_.wait(lock, [&] { return !e.firing; });
  const TimerPlan plan = e.plan;
  entries_.erase(ref);  // by key: other adds may have rehashed the map while this waited
  return plan;
}

void TimerScheduler::dequeue(th_task_ref ref, Entry& e) {
  if (!e.queued) return;
  queue_.erase({e.due_ms, ref});
  e.queued = false;
}

void TimerScheduler::run() noexcept {
  try {
    loop();
  } catch (...) {
    // Nothing may escape a plugin thread. Only an allocation failure can get here; the timers left then
    // end at the host's cancel deadline instead of taking the host down.
  }
}

void TimerScheduler::loop() {
  std::vector<Fire> batch;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (queue_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const int64_t now = wall_clock_ms();
    if (queue_.begin()->first > now) {
      wake_.wait_until(lock, wall_time(queue_.begin()->first));
      continue;
    }
    batch.clear();
    while (!queue_.empty() && queue_.begin()->first <= now && batch.size() < kMaxBatch) {
      const th_task_ref ref = queue_.begin()->second;
      Entry& e = entries_.at(ref);
      dequeue(ref, e);
      e.firing = true;
      // Late (a resumed task, a busy machine): report where the schedule stands, not every missed step.
      e.reported = std::max(e.plan.steps_done_at(now), e.reported + 1);
      batch.push_back(Fire{ref, &e, e.reported, now});
    }
    lock.unlock();
    for (const Fire& f : batch) fire(f);
    lock.lock();
    for (const Fire& f : batch) {
      Entry& e = *f.entry;
      e.firing = false;
      if (f.done >= e.plan.steps) e.ended = true;
      if (e.ended) continue;
      e.due_ms = e.plan.step_due(e.reported + 1);
      e.queued = true;
      queue_.emplace(e.due_ms, f.ref);
    }
    idle_.notify_all();
  }
}

void TimerScheduler::fire(const Fire& f) {
  const Entry& e = *f.entry;
  e.sink.progress(f.done, e.plan.steps, "steps", "waiting");
  if (f.done < e.plan.steps) return;
  e.sink.succeed("{\"waited_ms\":" + std::to_string(f.at_ms - e.plan.started_ms) +
                 ",\"resumed\":" + (e.resumed ? "true" : "false") + "}");
}

}  // namespace timer_plugin
