// The timers of one timer.wait executor, and the one thread that fires them.
//
// One thread per executor, however many timers: each timer sits in a set ordered by its next due time
// (the next progress step, the last one at the deadline), and the thread sleeps until the earliest one.
// A thread per timer would cost a stack and a wake-up source per waiting task for no work at all.
//
// Sink calls are made by the scheduler thread WITHOUT the lock (the host's sink must never be able to
// wait on a plugin lock). remove() therefore waits until a sink call in flight for that timer returned,
// so after remove() no sink call for it is made: what detach and release promise the host.
//
// Ownership: owns its thread; the destructor stops and joins it (timers still held are dropped unfired).
// Thread rule: every public method is safe from any thread, concurrently.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <taskhost/sdk.hpp>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "timer_plan.hpp"

namespace timer_plugin {

class TimerScheduler {
 public:
  TimerScheduler();
  ~TimerScheduler();
  TimerScheduler(const TimerScheduler&) = delete;
  TimerScheduler& operator=(const TimerScheduler&) = delete;

  // Schedules attempt `ref`: progress per step through `sink`, then success at the deadline with
  // {"waited_ms", "resumed"}. False if `ref` is already scheduled.
  bool add(th_task_ref ref, taskhost::TaskSink sink, TimerPlan plan, bool resumed);
  // Stops a timer that has not ended, for cancel: returns the steps it reported, and the caller ends
  // the task. nullopt when unknown or already ended (finished, stopped or removed).
  std::optional<int> stop(th_task_ref ref);
  // Forgets a timer, after any sink call in flight for it returned: no sink call for it follows.
  // Returns its plan, or nullopt when unknown.
  std::optional<TimerPlan> remove(th_task_ref ref);

 private:
  struct Entry {
    taskhost::TaskSink sink;  // const after add; read by the thread without the lock
    TimerPlan plan;           // likewise
    bool resumed = false;     // likewise
    int reported = 0;         // steps reported so far
    int64_t due_ms = 0;       // its key in queue_ while queued
    bool queued = false;
    bool firing = false;      // the thread is making a sink call for it right now
    bool ended = false;       // finished, stopped or removed: never queued again
  };
  struct Fire {
    th_task_ref ref;
    Entry* entry;  // stays valid: remove() waits for !firing before erasing
    int done;      // steps due now
    int64_t at_ms;
  };

  void run() noexcept;
  void loop();
  void dequeue(th_task_ref ref, Entry& e);
  static void fire(const Fire& f);

  std::mutex mu_;
  std::condition_variable wake_;  // the thread: a new earliest timer, or stop
  std::condition_variable idle_;  // remove(): a firing round ended
  bool stopping_ = false;
  std::unordered_map<th_task_ref, Entry> entries_;   // node-based: an Entry never moves
  std::set<std::pair<int64_t, th_task_ref>> queue_;  // (due_ms, ref), earliest first
  std::thread thread_;                               // last: starts after everything above exists
};

}  // namespace timer_plugin
