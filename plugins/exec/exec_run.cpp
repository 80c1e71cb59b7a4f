#include "exec_run.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace exec_plugin {

using Clock = std::chrono::steady_clock;
using taskhost::Status;

namespace {

constexpr size_t kReadChunk = 64 * 1024;

// Reads what is there into `buffer`; closes `fd` at EOF or error. Returns the bytes read (possibly none).
std::string_view read_some(UniqueFd& fd, std::vector<char>& buffer) {
  const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
  if (n > 0) return std::string_view(buffer.data(), static_cast<size_t>(n));
  if (n == 0 || (errno != EAGAIN && errno != EINTR)) fd.reset();
  return {};
}

// A write to a pipe whose reader is gone raises SIGPIPE in the writing thread, which by default would
// kill the whole host. The I/O thread blocks it for itself and takes a pending one off after EPIPE.
void block_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void discard_pending_sigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  const timespec zero{0, 0};
  while (::sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
  }
}

int poll_timeout_ms(std::optional<Clock::time_point> until) {
  if (!until) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
}

std::optional<Clock::time_point> earliest(std::optional<Clock::time_point> a, std::optional<Clock::time_point> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

}  // namespace

ExecRun::ExecRun(taskhost::TaskSink sink, ExecRequest request) : sink_(sink), request_(std::move(request)) {
  if (request_.stdin_data) {
    commands_.stdin_text = *request_.stdin_data;
    commands_.close_stdin = true;
    closed_why_ = "stdin was given in the input and is closed after it";
  }
}

ExecRun::~ExecRun() {
  abandon();
  join();
}

Status ExecRun::launch() {
  wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.open()) throw std::system_error(errno, std::system_category(), "eventfd");
  std::promise<Status> spawned;
  std::future<Status> result = spawned.get_future();
  thread_ = std::thread([this, &spawned] { run(spawned); });
  return result.get();  // the thread sets it before anything else, and never touches `spawned` again
}

Status ExecRun::send(const StdinCommand& command) {
  {
    std::lock_guard lock(mu_);
    if (!closed_why_.empty())
      return Status::Failed("cannot write to the stdin of '" + request_.argv.front() + "': " + closed_why_);
    commands_.stdin_text += command.text;
    if (command.close) {
      commands_.close_stdin = true;
      closed_why_ = "stdin was closed by a steering message";
    }
  }
  wake();
  return Status::Ok();
}

void ExecRun::cancel() {
  {
    std::lock_guard lock(mu_);
    commands_.cancel = true;
  }
  wake();
}

void ExecRun::abandon() {
  {
    std::lock_guard lock(mu_);
    commands_.abandon = true;
  }
  wake();
}

void ExecRun::join() {
  if (thread_.joinable()) thread_.join();
}

void ExecRun::wake() {
  if (!wake_.open()) return;
  const uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof(one));
}

ExecRun::Commands ExecRun::take_commands() {
  std::lock_guard lock(mu_);
  Commands taken = std::move(commands_);
  commands_ = Commands{};
  // Flags stay set: the loop acts on them each round until it is done.
  commands_.close_stdin = taken.close_stdin;
  commands_.cancel = taken.cancel;
  commands_.abandon = taken.abandon;
  return taken;
}

void ExecRun::stdin_gone(const char* why) {
  std::lock_guard lock(mu_);
  if (closed_why_.empty()) closed_why_ = why;
}

void ExecRun::run(std::promise<Status>& spawned) noexcept {
  block_sigpipe();
  // Started here, not on the host thread that called start(): the program gets SIGKILL when the thread
  // that started it ends (ChildProcess::spawn), and a host pool thread may end while the task still
  // runs; this thread ends only after the program was reaped. So a host that dies (SIGKILL, a crash, a
  // second SIGTERM) leaves no program running.
  Status s = Status::Ok();
  try {
    s = ChildProcess::spawn(request_, &child_);
  } catch (const std::exception& e) {
    s = Status::Failed(std::string("exec.run could not start its program: ") + e.what());
  }
  if (s.ok()) {
    started_ = Clock::now();
    boost::json::object started;  // before every output delta
    started["pid"] = child_->pid();
    sink_.post("started", boost::json::serialize(started));
    sink_.state(taskhost::RunState::running,
                "running '" + request_.argv.front() + "' as pid " + std::to_string(child_->pid()));
  }
  spawned.set_value(s);
  if (!s.ok()) return;
  try {
    Counts counts;
    Stop stop = Stop::none;
    if (!serve(&counts, &stop)) return;
    report(*child_->reap(), counts, stop);
  } catch (const std::exception& e) {
    // Nothing may escape a plugin thread (it would terminate the host): end the task, kill the program.
    child_->kill_and_reap();
    sink_.fail(TH_ERROR_WORKER_ERROR, std::string("exec.run I/O thread failed: ") + e.what());
  }
}

bool ExecRun::serve(Counts* counts, Stop* stop) {
  ChildProcess& child = *child_;
  std::string pending;  // stdin bytes taken from the queue, not yet written
  std::vector<char> buffer(kReadChunk);
  std::optional<Clock::time_point> timeout_at, kill_at, drain_until;
  if (request_.timeout) timeout_at = started_ + *request_.timeout;
  const auto terminate = [&](Stop why) {
    *stop = why;
    child.signal_group(SIGTERM);
    kill_at = Clock::now() + kKillGrace;
  };

  for (;;) {
    Commands c = take_commands();
    if (c.abandon) {
      child.kill_and_reap();
      return false;
    }
    pending += c.stdin_text;
    if (!child.stdin_fd().open()) pending.clear();  // queued just before stdin went away
    // A cancel that arrives after the program exited changes nothing: the work finished first.
    if (c.cancel && *stop == Stop::none && !child.reaped()) terminate(Stop::cancel);
    if (c.close_stdin && pending.empty()) child.stdin_fd().reset();
    const auto now = Clock::now();
    if (*stop == Stop::none && !child.reaped() && timeout_at && now >= *timeout_at) terminate(Stop::timeout);
    if (kill_at && now >= *kill_at) {
      child.signal_group(SIGKILL);
      kill_at.reset();
    }
    const bool output_open = child.stdout_fd().open() || child.stderr_fd().open();
    if (child.reaped() && (!output_open || (drain_until && now >= *drain_until))) return true;

    std::array<pollfd, 5> fds{};
    size_t n = 0;
    const auto watch = [&](int fd, short events) {
      if (fd < 0) return -1;
      fds[n] = pollfd{fd, events, 0};
      return static_cast<int>(n++);
    };
    const int w = watch(wake_.get(), POLLIN);
    const int out = watch(child.stdout_fd().get(), POLLIN);
    const int err = watch(child.stderr_fd().get(), POLLIN);
    const int in = pending.empty() ? -1 : watch(child.stdin_fd().get(), POLLOUT);
    const int ex = child.reaped() ? -1 : watch(child.exit_fd(), POLLIN);
    const auto until = earliest(earliest(*stop == Stop::none ? timeout_at : std::nullopt, kill_at), drain_until);
    if (::poll(fds.data(), n, poll_timeout_ms(until)) < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::system_category(), "poll");
    }
    const auto ready = [&](int i) { return i >= 0 && fds[static_cast<size_t>(i)].revents != 0; };
    if (ready(w)) {
      uint64_t drained = 0;
      (void)!::read(wake_.get(), &drained, sizeof(drained));
    }
    if (ready(out)) {
      const std::string_view chunk = read_some(child.stdout_fd(), buffer);
      counts->stdout_bytes += chunk.size();
      if (!chunk.empty()) sink_.output("stdout", chunk);
    }
    if (ready(err)) {
      const std::string_view chunk = read_some(child.stderr_fd(), buffer);
      counts->stderr_bytes += chunk.size();
      if (!chunk.empty()) sink_.output("stderr", chunk);
    }
    if (ready(in)) {
      const ssize_t written = ::write(child.stdin_fd().get(), pending.data(), pending.size());
      if (written > 0) {
        pending.erase(0, static_cast<size_t>(written));
      } else if (written < 0 && errno != EAGAIN && errno != EINTR) {
        if (errno == EPIPE) discard_pending_sigpipe();
        child.stdin_fd().reset();
        pending.clear();
        stdin_gone("the program closed its stdin");
      }
    }
    if (ready(ex) && child.reap()) {
      // The program is gone, and reap() killed what it left in its group; read what is still in the
      // pipes, for at most kDrainGrace.
      kill_at.reset();
      drain_until = Clock::now() + kDrainGrace;
      child.stdin_fd().reset();
      pending.clear();
      stdin_gone("the program has exited");
    }
  }
}

void ExecRun::report(const ExitInfo& exit, const Counts& counts, Stop stop) {
  boost::json::object summary;
  summary["exit_code"] = exit.exit_code;
  summary["stdout_bytes"] = counts.stdout_bytes;
  summary["stderr_bytes"] = counts.stderr_bytes;
  const std::string& program = request_.argv.front();
  if (stop == Stop::none && exit.exit_code == 0 && exit.signal == 0) {
    sink_.succeed(boost::json::serialize(summary));
    return;
  }
  // A failed or canceled completion carries no output, so the numbers travel in a message first.
  if (exit.signal != 0) summary["signal"] = exit.signal;
  sink_.post("exited", boost::json::serialize(summary));
  const std::string how = exit.signal != 0 ? "was killed by signal " + std::to_string(exit.signal)
                                           : "exited with code " + std::to_string(exit.exit_code);
  switch (stop) {
    case Stop::cancel:
      sink_.canceled("canceled: program '" + program + "' " + how);
      break;
    case Stop::timeout:
      sink_.fail(TH_ERROR_TIMEOUT, "program '" + program + "' did not finish within " +
                                       std::to_string(request_.timeout->count()) + " ms and " + how);
      break;
    case Stop::none:
      sink_.fail(TH_ERROR_COMPONENT_FAILED, "program '" + program + "' " + how);
      break;
  }
}

}  // namespace exec_plugin
