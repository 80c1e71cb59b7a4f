#include "plugin/isolated/plugin_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

extern char** environ;

namespace taskhost::plugin::isolated {
namespace {

std::string errno_text(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : std::string());
  }
  return "ended with wait status " + std::to_string(status);
}

// PR_SET_PDEATHSIG fires when the THREAD that started the child exits, not the process: a child started
// from a loader's short-lived thread would be killed with it. So every plugin process is started by this
// one thread, which lives as long as the host.
class Spawner {
 public:
  static Spawner& instance() {
    static Spawner* spawner = new Spawner;  // never destroyed: its thread must outlive every child
    return *spawner;
  }

  pid_t spawn(const std::function<pid_t()>& start) {
    Job job{&start};
    std::unique_lock lock(mu_);
    queue_.push_back(&job);
    cv_.notify_all();
    cv_.wait(lock, [&] { return job.done; });
    return job.pid;
  }

 private:
  struct Job {
    const std::function<pid_t()>* start;
    pid_t pid = -1;
    bool done = false;
  };

  Spawner() { std::thread([this] { run(); }).detach(); }

  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return !queue_.empty(); });
      Job* job = queue_.front();
      queue_.pop_front();
      lock.unlock();
      const pid_t pid = (*job->start)();
      lock.lock();
      job->pid = pid;
      job->done = true;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job*> queue_;  // guarded by mu_
};

}  // namespace

std::unique_ptr<PluginProcess> PluginProcess::spawn(const std::filesystem::path& program, int socket_fd,
                                                    int image_fd, const std::filesystem::path& source,
                                                    std::string* error) {
  // posix_spawn's dup2 onto the same number would keep close-on-exec set, so the descriptors are first
  // moved above the two the child expects.
  const int sock = ::fcntl(socket_fd, F_DUPFD_CLOEXEC, 10);
  const int image = ::fcntl(image_fd, F_DUPFD_CLOEXEC, 10);
  if (sock < 0 || image < 0) {
    *error = errno_text("duplicating a descriptor for the plugin process", errno);
    if (sock >= 0) ::close(sock);
    if (image >= 0) ::close(image);
    return nullptr;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sock, kChildSocketFd);
  posix_spawn_file_actions_adddup2(&actions, image, kChildImageFd);
  // Not the host's signal state: `serve` blocks SIGTERM/SIGINT/SIGHUP on its threads to wait for them.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (const int sig : {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGALRM, SIGTERM, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  const std::string program_text = program.string();
  const std::string source_text = source.string();
  const std::string host_pid = std::to_string(::getpid());
  std::vector<char*> argv{const_cast<char*>(program_text.c_str()), const_cast<char*>(source_text.c_str()),
                          const_cast<char*>(host_pid.c_str()), nullptr};
  int rc = 0;
  const pid_t pid = Spawner::instance().spawn([&] {
    pid_t child = -1;
    rc = ::posix_spawn(&child, program_text.c_str(), &actions, &attr, argv.data(), environ);
    return child;
  });
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(sock);
  ::close(image);
  if (rc != 0) {
    *error = errno_text(("starting the plugin process program " + program_text).c_str(), rc);
    return nullptr;
  }
  return std::unique_ptr<PluginProcess>(new PluginProcess(pid));
}

PluginProcess::PluginProcess(pid_t pid) : pid_(pid) {
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));  // -1 on kernels before 5.3: the socket alone
}

PluginProcess::~PluginProcess() {
  if (!reaped_) (void)reap(std::chrono::milliseconds(0));
  if (pidfd_ >= 0) ::close(pidfd_);
}

void PluginProcess::kill_group() {
  if (!reaped_) ::kill(-pid_, SIGKILL);
}

std::string PluginProcess::reap(std::chrono::milliseconds grace) {
  if (reaped_) return "already reaped";
  const auto until = std::chrono::steady_clock::now() + grace;
  int status = 0;
  for (;;) {
    const pid_t got = ::waitpid(pid_, &status, WNOHANG);
    if (got == pid_) break;
    if (got < 0 && errno != EINTR) {
      reaped_ = true;
      return errno_text("waiting for the plugin process", errno);
    }
    if (got == 0 && std::chrono::steady_clock::now() >= until) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
      return describe(status) + " (killed by the host: it did not exit by itself)";
    }
    if (got == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  reaped_ = true;
  return describe(status);
}

int image_memfd(const std::string& image, const std::string& name, std::string* error) {
  const int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    *error = errno_text("memfd_create", errno);
    return -1;
  }
  size_t done = 0;
  while (done < image.size()) {
    const ssize_t wrote = ::write(fd, image.data() + done, image.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) {
      *error = errno_text("writing the plugin image", errno);
      ::close(fd);
      return -1;
    }
    done += static_cast<size_t>(wrote);
  }
  // Sealed: the child reads exactly the bytes the host inspected and hashed.
  (void)::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

std::filesystem::path default_plugin_process_program() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "taskhost-plugin-child";
  return self.parent_path() / "taskhost-plugin-child";
}

}  // namespace taskhost::plugin::isolated
