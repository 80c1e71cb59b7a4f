#include "common/thread_sched.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>

namespace taskhost {

pid_t current_thread_id() { return ::gettid(); }

namespace {

// Reads /proc/self/task/<tid>/<file> into `buf` (NUL-terminated); the length, or -1. Plain open/read:
// the caller must not allocate or throw.
ssize_t read_task_file(pid_t tid, const char* file, char* buf, size_t size) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/%s", static_cast<int>(tid), file);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const ssize_t n = ::read(fd, buf, size - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  return n;
}

}  // namespace

std::optional<ThreadSample> sample_thread(pid_t tid) {
  ThreadSample s;
  char buf[512];
  // stat: "<tid> (<comm>) <state> ...": the name may hold spaces and parentheses, so the state is the
  // first field after the last ')'.
  if (read_task_file(tid, "stat", buf, sizeof buf) < 0) return std::nullopt;
  const char* close = std::strrchr(buf, ')');
  if (close == nullptr || close[1] != ' ') return std::nullopt;
  s.runnable = close[2] == 'R';
  // schedstat: "<ns on a CPU> <ns waiting on a runqueue> <timeslices>".
  const ssize_t n = read_task_file(tid, "schedstat", buf, sizeof buf);
  if (n < 0) return std::nullopt;
  if (std::from_chars(buf, buf + n, s.on_cpu_ns).ec != std::errc()) return std::nullopt;
  return s;
}

}  // namespace taskhost
