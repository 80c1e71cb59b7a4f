// taskhost::RunTable<Run> — an executor's running tasks, one Run per started attempt, keyed by the
// attempt's th_task_ref (Task::ref()), for executors that give each task its own worker thread.
//
//   class MyExecutor final : public taskhost::TaskExecutor {
//     Status start(const Task& task, TaskSink& sink) override {
//       auto run = std::make_shared<MyRun>(sink, ...);
//       if (!runs_.insert(task.ref(), run)) return Status::Failed("task attempt already started");
//       run->launch();                                      // starts the run's thread
//       return Status::Ok();
//     }
//     Status cancel(const Task& task, TaskSink&) override {
//       if (auto run = runs_.find(task.ref())) run->cancel();
//       return Status::Ok();
//     }
//     void release(const Task& task) override { runs_.release(task.ref()); }   // stop + join
//     taskhost::RunTable<MyRun> runs_;                      // its destructor stops and joins the rest
//   };
//
// What Run needs: `join()`, which waits for the run's thread (and returns at once if none was started
// or it was joined already), and a member function with no arguments that asks the run to stop for good
// and returns at once: the task is over for the executor, so the run should end promptly; sink calls it
// still makes are refused. That member is `stop()` unless the constructor names another one:
// `taskhost::RunTable<ExecRun> runs_{&ExecRun::abandon};`. Neither may throw. The table swallows what
// they throw anyway, so that nothing escapes release() or the destructor and every other run is still
// stopped and joined, but a run whose join() threw may still be running when the plugin is unmapped.
//
// Ownership: runs are held by shared_ptr. find() hands out a copy, so a run found by one host thread
// stays alive while another thread takes it out of the table; the table stops and joins a run only
// after taking it out (release, release_all, the destructor), so exactly one thread ever does.
//
// Thread rule: every member except the destructor is safe from any thread, concurrently. The lock is
// held only to read or change the map — never while a Run member is called — so a stop or join that
// waits never blocks calls for other tasks. Destroy the table only once no other thread can use it (in
// the executor's destructor the host has released every task); declare it after the executor members
// the runs use, so it is destroyed — and its runs joined — before them.
//
// Needs C++17 only. Errors are answers (bool, null), never exceptions, except what insert(), find(),
// take() and size() cannot help: std::bad_alloc, or std::system_error from the mutex. From an executor
// method the SDK turns those into a failed call; release() and release_all() are noexcept.
#pragma once

#include <taskhost/plugin.h>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

namespace taskhost {

template <typename Run>
class RunTable {
 public:
  using RunPtr = std::shared_ptr<Run>;
  using StopFn = void (Run::*)();

  // `stop` is the Run member that asks a run to stop for good (see above); join() always follows it.
  // Null: join() alone, for a Run whose join() itself stops it.
  explicit RunTable(StopFn stop = &Run::stop) noexcept : stop_(stop) {}
  // Stops and joins every run still in the table (release_all).
  ~RunTable() { release_all(); }
  RunTable(const RunTable&) = delete;
  RunTable& operator=(const RunTable&) = delete;

  // Adds `run` for attempt `ref`. False, and the table unchanged, when `ref` already has a run or `run`
  // is null: the caller still owns `run` then (destroying it should stop whatever it started).
  bool insert(th_task_ref ref, RunPtr run) {
    if (!run) return false;
    std::lock_guard<std::mutex> lock(mu_);
    return runs_.emplace(ref, std::move(run)).second;
  }

  // The run of `ref`, left in the table; null when there is none.
  RunPtr find(th_task_ref ref) const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = runs_.find(ref);
    return it == runs_.end() ? nullptr : it->second;
  }

  // Removes the run of `ref` and hands it over (null when there is none): the caller now stops and joins
  // it, e.g. for detach(), where the run stops after a final checkpoint rather than through stop().
  RunPtr take(th_task_ref ref) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = runs_.find(ref);
    if (it == runs_.end()) return nullptr;
    RunPtr run = std::move(it->second);
    runs_.erase(it);
    return run;
  }

  // For TaskExecutor::release(): takes the run of `ref` out, then stops and joins it outside the lock.
  // False when there was none (never started, or taken already).
  bool release(th_task_ref ref) noexcept {
    RunPtr run;
    try {
      run = take(ref);
    } catch (...) {
      return false;  // only std::mutex::lock can throw here, and it does not on Linux
    }
    if (!run) return false;
    ask_to_stop(*run);
    join(*run);
    return true;
  }

  // Takes every run out, asks each one to stop, then joins them, outside the lock (so they wind down
  // side by side). The destructor calls it; an executor may call it earlier in its own destructor.
  void release_all() noexcept {
    std::map<th_task_ref, RunPtr> runs;
    try {
      std::lock_guard<std::mutex> lock(mu_);
      runs.swap(runs_);
    } catch (...) {
      return;  // as in release()
    }
    for (auto& entry : runs) ask_to_stop(*entry.second);
    for (auto& entry : runs) join(*entry.second);
  }

  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_.size();
  }
  bool empty() const { return size() == 0; }

 private:
  // A Run's stop and join must not throw (see above); what they throw anyway is swallowed, so that no
  // exception leaves release() or the destructor and the other runs are still stopped and joined.
  void ask_to_stop(Run& run) const noexcept {
    try {
      if (stop_ != nullptr) (run.*stop_)();
    } catch (...) {
    }
  }
  static void join(Run& run) noexcept {
    try {
      run.join();
    } catch (...) {
    }
  }

  const StopFn stop_;
  mutable std::mutex mu_;
  std::map<th_task_ref, RunPtr> runs_;  // one per started attempt
};

}  // namespace taskhost
