#include "child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>
#include <vector>

namespace exec_plugin {

using taskhost::Status;

namespace {

std::string errno_text(int err) { return std::system_category().message(err); }

ExitInfo decode(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) {
    info.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
    info.exit_code = 128 + info.signal;
  }
  return info;
}

// A pipe whose ends are close-on-exec (so no other program the host starts inherits them, which would
// hide EOF) and numbered above 2 (so the dup2 onto 0/1/2 in the child cannot clobber another end when
// the host runs with a standard fd closed).
Status make_pipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::Failed("pipe2: " + errno_text(errno));
  UniqueFd ends[2] = {UniqueFd(fds[0]), UniqueFd(fds[1])};
  for (UniqueFd& end : ends) {
    if (end.get() > 2) continue;
    UniqueFd moved(::fcntl(end.get(), F_DUPFD_CLOEXEC, 3));
    if (!moved.open()) return Status::Failed("fcntl(F_DUPFD_CLOEXEC): " + errno_text(errno));
    end = std::move(moved);
  }
  *read_end = std::move(ends[0]);
  *write_end = std::move(ends[1]);
  return Status::Ok();
}

// Through syscall(): glibc 2.36's <sys/pidfd.h> declares pidfd_open without extern "C", so C++ code
// cannot link against it.
int open_pidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0U)); }

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::vector<char*> c_array(const std::vector<std::string>& items) {
  std::vector<char*> out;
  for (const std::string& s : items) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// After fork, in the child. A new process group (see the header); SIGKILL when the thread that forked it
// ends (the task's I/O thread, which outlives the program unless the host itself dies, and then the
// program must not outlive the host); an empty signal mask and default dispositions (the host may block
// or ignore signals, servers often ignore SIGPIPE, and a program must not inherit that, or `yes | head`
// would never end); only stdio open; then exec. Never returns.
[[noreturn]] void run_child(pid_t parent, int stdin_fd, int stdout_fd, int stderr_fd, int report_fd, const char* cwd,
                            const char* program, char* const* argv, char* const* envp) {
  const auto fail = [report_fd]() {
    const int err = errno;
    [[maybe_unused]] const ssize_t n = ::write(report_fd, &err, sizeof err);
    ::_exit(127);
  };
  if (::setpgid(0, 0) != 0) fail();
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail();
  if (::getppid() != parent) ::_exit(127);  // the host died before the line above: nobody waits for us
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);  // EINVAL for glibc's own: fine
  }
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) fail();
  if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0) fail();
  // Only stdio crosses: a descriptor the host or another plugin opened without close-on-exec (a
  // listening socket, a client connection, a lock file) must not live on in the program. The report
  // pipe is close-on-exec: marked, not closed, so a failed exec can still write to it.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) fail();
  if (cwd != nullptr && ::chdir(cwd) != 0) fail();
  ::execve(program, argv, envp);
  fail();
  ::_exit(127);  // not reached: fail() exits
}

}  // namespace

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status ChildProcess::spawn(const ExecRequest& r, std::unique_ptr<ChildProcess>* out) {
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  UniqueFd stdin_read, stdout_write, stderr_write;
  if (Status s = make_pipe(&stdin_read, &child->stdin_); !s.ok()) return s;
  if (Status s = make_pipe(&child->stdout_, &stdout_write); !s.ok()) return s;
  if (Status s = make_pipe(&child->stderr_, &stderr_write); !s.ok()) return s;

  std::vector<char*> argv = c_array(r.argv);
  std::vector<char*> envp = c_array(r.env);
  const char* cwd = r.cwd ? r.cwd->c_str() : nullptr;
  // The child reports why it could not exec (an errno value) through this pipe; EOF means it did.
  UniqueFd report_read, report_write;
  if (Status s = make_pipe(&report_read, &report_write); !s.ok()) return s;
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return Status::Failed("fork: " + errno_text(errno));
  if (pid == 0) {
    // The child: async-signal-safe calls only, on memory prepared before the fork (another host thread
    // may have held the allocator's lock at the fork).
    run_child(parent, stdin_read.get(), stdout_write.get(), stderr_write.get(), report_write.get(), cwd,
              r.program.c_str(), argv.data(), envp.data());
  }
  report_write.reset();
  int child_errno = 0;
  ssize_t got = 0;
  do {
    got = ::read(report_read.get(), &child_errno, sizeof child_errno);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return Status::InvalidArgument("'argv[0]': cannot start program '" + r.argv.front() + "' (" + r.program +
                                   "): " + errno_text(child_errno));
  }
  child->pid_ = pid;
  // The parent must not hold the child's ends, or it would never see EOF on stdout/stderr.
  stdin_read.reset();
  stdout_write.reset();
  stderr_write.reset();
  child->pidfd_ = UniqueFd(open_pidfd(pid));
  if (!child->pidfd_.open()) {
    const int err = errno;
    child->kill_and_reap();
    return Status::Failed("pidfd_open: " + errno_text(err));
  }
  set_nonblocking(child->stdin_.get());
  set_nonblocking(child->stdout_.get());
  set_nonblocking(child->stderr_.get());
  *out = std::move(child);
  return Status::Ok();
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_) kill_and_reap();
}

void ChildProcess::signal_group(int sig) const {
  if (pid_ > 0 && !exit_) ::kill(-pid_, sig);
}

std::optional<ExitInfo> ChildProcess::reap() {
  if (exit_ || pid_ <= 0) return exit_;
  // Peek without reaping (WNOWAIT): the unreaped zombie keeps the group id ours for the SIGKILL below.
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    // ECHILD: someone else reaped it (a host that sets SIGCHLD to SIG_IGN); the status is lost.
    if (errno == ECHILD) exit_ = ExitInfo{-1, 0};
    return exit_;
  }
  if (info.si_pid != pid_) return std::nullopt;  // still running
  return kill_and_reap();  // SIGKILLs the group's leftovers, then reaps
}

ExitInfo ChildProcess::kill_and_reap() {
  signal_group(SIGKILL);
  if (exit_ || pid_ <= 0) return exit_.value_or(ExitInfo{});
  int status = 0;
  pid_t r = -1;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  exit_ = r == pid_ ? decode(status) : ExitInfo{-1, 0};
  return *exit_;
}

}  // namespace exec_plugin
