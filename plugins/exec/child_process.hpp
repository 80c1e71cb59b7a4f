// One program started for an exec.run task: its own process group, pipes to its stdin/stdout/stderr, and
// a pidfd that becomes readable when it exits.
//
// Why fork with only async-signal-safe steps, and not Boost.Process (v1) or posix_spawn: the host is
// multithreaded, and Boost.Process v1 runs ordinary C++ (allocation, its error-reporting pipe) in the
// child between fork and exec; if another host thread held the malloc lock at the fork, that child
// deadlocks. Here the child only makes system calls on memory prepared before the fork, and reports a
// failed exec or chdir through a close-on-exec pipe. posix_spawn (used before) is as safe, but cannot set
// the parent-death signal: with it, a host killed by SIGKILL left its programs running (found by
// exploratory QA), and a restarted host could neither reach nor stop them. Boost.Process v1 also has no
// graceful stop (terminate() is SIGKILL), and its asynchronous I/O installs a process-wide SIGCHLD
// handler, which is process state a plugin has no business owning.
//
// Why the parent-death signal is SIGKILL to the program alone: it fires when the THREAD that forked the
// program ends, so spawn() runs on the task's I/O thread (exec_run.hpp), which ends only after the
// program was reaped; it then means "the host died". The group cannot be signalled by a dead host.
//
// Why a process group: a cancel, timeout or kill must reach whatever the program started too
// (`sh -c 'sleep 30'` forks sleep); signalling the group leaves no grandchild behind.
// Why a pidfd: it makes "the program exited" one more fd to poll beside the pipes, with no SIGCHLD
// handler. The group is only ever signalled before the program is reaped: until then the zombie holds its
// pid, so the group id cannot have been reused by an unrelated process.
//
// Ownership: owns its fds and the child; the destructor kills the group and reaps a child still running.
// Thread rule: not thread-safe; one thread (the task's I/O thread) uses it after spawn.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <taskhost/sdk.hpp>

#include "exec_request.hpp"

namespace exec_plugin {

// A file descriptor closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset();

 private:
  int fd_ = -1;
};

// How the program ended.
struct ExitInfo {
  int exit_code = 0;  // the exit status, or 128 + signal when a signal ended it (as shells report it)
  int signal = 0;     // the signal that ended it, or 0
};

class ChildProcess {
 public:
  // Starts `r.program` with r.argv, r.env and r.cwd. An error that is the request's fault (cannot exec)
  // is InvalidArgument naming argv[0]; a resource failure (pipes, pidfd) is Failed.
  static taskhost::Status spawn(const ExecRequest& r, std::unique_ptr<ChildProcess>* out);

  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Parent ends: write to stdin, read stdout/stderr. All non-blocking. Close them through the refs.
  UniqueFd& stdin_fd() { return stdin_; }
  UniqueFd& stdout_fd() { return stdout_; }
  UniqueFd& stderr_fd() { return stderr_; }
  // Readable once the program exited (then reap() returns its status).
  int exit_fd() const { return pidfd_.get(); }

  // Sends `sig` to the program's whole process group. Does nothing once the program was reaped.
  void signal_group(int sig) const;
  // Once the program exited: SIGKILL to whatever it left running in its group (no child left behind),
  // then its exit status. nullopt while it runs. Once reaped, stays reaped.
  std::optional<ExitInfo> reap();
  // SIGKILL to the group, then waits for the program to be gone and reaps it.
  ExitInfo kill_and_reap();
  bool reaped() const { return exit_.has_value(); }

 private:
  ChildProcess() = default;

  pid_t pid_ = -1;
  UniqueFd stdin_, stdout_, stderr_, pidfd_;
  std::optional<ExitInfo> exit_;
};

}  // namespace exec_plugin
