// One running exec.run task: the program and the I/O thread that serves it.
//
// The I/O thread starts the program (so the program dies with it: child_process.hpp), then polls the
// program's stdout and stderr (each chunk goes to the sink as an output delta
// the moment it arrives), writes queued steering text to its stdin, watches the exit pidfd, and enforces
// the timeout and the SIGTERM → SIGKILL escalation. It alone touches the ChildProcess and makes the
// task's terminal sink call. Host threads only queue work (send, cancel, abandon) and wake it through an
// eventfd, so no executor call ever blocks on the program.
//
// Ownership: the executor owns each ExecRun (shared_ptr in its taskhost::RunTable). The destructor
// abandons and joins, so neither the thread nor the program can outlive it.
// Thread rule: send, cancel, abandon and join may be called from any thread, concurrently.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <taskhost/sdk.hpp>
#include <future>
#include <thread>

#include "child_process.hpp"
#include "exec_request.hpp"

namespace exec_plugin {

// After SIGTERM (cancel or timeout), how long the program gets before SIGKILL.
inline constexpr std::chrono::milliseconds kKillGrace{1000};
// After the program exited, how long output still arriving from processes that escaped its group (e.g.
// through setsid) is read before the pipes are closed anyway.
inline constexpr std::chrono::milliseconds kDrainGrace{500};

class ExecRun {
 public:
  ExecRun(taskhost::TaskSink sink, ExecRequest request);
  ~ExecRun();
  ExecRun(const ExecRun&) = delete;
  ExecRun& operator=(const ExecRun&) = delete;

  // Starts the I/O thread, which starts the program (ChildProcess::spawn: the program dies with that
  // thread, and the thread lives until the program is reaped) and then serves it; returns once the
  // program runs, or why it could not start. Call once. Throws std::system_error if no thread or eventfd
  // can be made (the SDK turns that into a failed start).
  taskhost::Status launch();
  // Queues stdin text and/or the close of stdin. Failed once stdin is closed or the program exited.
  taskhost::Status send(const StdinCommand& command);
  // SIGTERM now, SIGKILL after kKillGrace; the task then ends canceled. Returns at once.
  void cancel();
  // The task is over for the executor: SIGKILL the group, reap, make no further sink call, stop.
  void abandon();
  // Waits for the I/O thread to end.
  void join();

 private:
  enum class Stop { none, cancel, timeout };
  struct Commands {
    std::string stdin_text;
    bool close_stdin = false;
    bool cancel = false;
    bool abandon = false;
  };
  struct Counts {
    uint64_t stdout_bytes = 0;
    uint64_t stderr_bytes = 0;
  };

  void run(std::promise<taskhost::Status>& spawned) noexcept;
  // Polls until the program exited and its output is drained. False when abandoned (no report then).
  bool serve(Counts* counts, Stop* stop);
  void report(const ExitInfo& exit, const Counts& counts, Stop stop);
  Commands take_commands();
  void stdin_gone(const char* why);
  void wake();

  const taskhost::TaskSink sink_;
  const ExecRequest request_;
  std::unique_ptr<ChildProcess> child_;  // the I/O thread's alone: it starts the program
  std::chrono::steady_clock::time_point started_;  // the spawn: the timeout counts from here (I/O thread)
  UniqueFd wake_;                        // eventfd: host threads → I/O thread

  std::mutex mu_;
  Commands commands_;      // queued by host threads, taken by the I/O thread
  std::string closed_why_; // non-empty once stdin takes no more text
  std::thread thread_;
};

}  // namespace exec_plugin
