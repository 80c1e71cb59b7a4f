#include "child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
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

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::vector<char*> c_array(const std::vector<std::string>& items) {
  std::vector<char*> out;
  for (const std::string& s : items) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
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

  SpawnSetup setup;
  // A new process group (see the header), an empty signal mask and default dispositions: the host
  // thread that calls start() may block or ignore signals (servers often ignore SIGPIPE), and a program
  // must not inherit that, or `yes | head` would never end.
  sigset_t mask;
  sigemptyset(&mask);
  sigset_t defaults;
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  int setup_rc = 0;  // the first failure of the calls below (each returns an errno value)
  const auto check = [&setup_rc](int rc) { setup_rc = setup_rc != 0 ? setup_rc : rc; };
  check(posix_spawn_file_actions_adddup2(&setup.actions, stdin_read.get(), 0));
  check(posix_spawn_file_actions_adddup2(&setup.actions, stdout_write.get(), 1));
  check(posix_spawn_file_actions_adddup2(&setup.actions, stderr_write.get(), 2));
  // Only stdio crosses: a descriptor the host or another plugin opened without close-on-exec (a
  // listening socket, a client connection, a lock file) must not live on in the program.
  check(posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3));
  if (r.cwd) check(posix_spawn_file_actions_addchdir_np(&setup.actions, r.cwd->c_str()));
  check(posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  check(posix_spawnattr_setpgroup(&setup.attr, 0));
  check(posix_spawnattr_setsigmask(&setup.attr, &mask));
  check(posix_spawnattr_setsigdefault(&setup.attr, &defaults));
  if (setup_rc != 0) return Status::Failed("posix_spawn setup: " + errno_text(setup_rc));

  std::vector<char*> argv = c_array(r.argv);
  std::vector<char*> envp = c_array(r.env);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, r.program.c_str(), &setup.actions, &setup.attr, argv.data(), envp.data());
  if (rc != 0) {
    return Status::InvalidArgument("'argv[0]': cannot start program '" + r.argv.front() + "' (" + r.program +
                                   "): " + errno_text(rc));
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
