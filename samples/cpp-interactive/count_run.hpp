// One running interactive.count task: a worker thread that counts steps, reporting progress and a
// checkpoint per step, optionally stopping to ask for confirmation, and reacting to steering.
//
// Ownership: the executor owns each CountRun (shared_ptr in its taskhost::RunTable) and joins it before
// dropping it; the destructor also stops and joins, so a thread is never left detached.
// Thread rule: cancel, detach, deliver and join may be called from any host thread; the worker talks to
// the host only through its TaskSink copy.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <taskhost/sdk.hpp>
#include <thread>

namespace interactive {

struct CountSettings {
  int steps = 5;      // count to this
  int delay_ms = 20;  // pause before each step
  bool ask = false;   // ask "confirm" once, after step ask_at
  int ask_at = 1;
};

// Where an attempt starts: nothing done for a fresh start, the checkpoint's record on re-attach.
struct CountProgress {
  int step = 0;                        // the last step done
  std::optional<std::string> answer;   // the answer to "confirm", once given
};

class CountRun {
 public:
  CountRun(taskhost::TaskSink sink, CountSettings settings, CountProgress resume);
  ~CountRun();
  CountRun(const CountRun&) = delete;
  CountRun& operator=(const CountRun&) = delete;

  // Starts the worker thread. Call once.
  void launch();
  // Asks the worker to end the task canceled at its next wake-up; returns at once.
  void cancel();
  // Asks the worker to stop WITHOUT ending the task, after a final checkpoint; waits until it stopped.
  void detach();
  // Steering text, or the answer to "confirm". Returns at once; the worker acts on it.
  taskhost::Status deliver(const taskhost::Message& message);
  // Waits for the worker thread to finish (it must have been told to stop, or be done).
  void join();

 private:
  enum class Wake { timeout, answer, stop };

  void run();
  // Sleeps until `deadline` (or, with no deadline, until an answer arrives), handling steering on the
  // way. Returns why it woke up.
  Wake pause(std::optional<std::chrono::steady_clock::time_point> deadline);
  void handle_steering(const std::string& text);
  std::string output(int counted) const;
  std::string checkpoint_text(int step) const;  // what parse_checkpoint reads back

  const taskhost::TaskSink sink_;
  const CountSettings settings_;
  const int resume_from_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool cancel_ = false;
  bool detach_ = false;
  std::deque<std::string> inbox_;      // steering texts not yet handled
  std::optional<std::string> answer_;  // the answer to "confirm" (given to this attempt or an earlier one)
  int delay_ms_;                       // current step delay ("faster" halves it)

  std::thread worker_;
};

}  // namespace interactive
