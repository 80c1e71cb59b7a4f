#include "host/state_lock.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace taskhost {

StateLock::StateLock(const std::filesystem::path& dir) {
  const std::filesystem::path file = dir / "taskhost.lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw StateDirError(fmt::format("cannot open {}: {}", file.string(), std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[32] = {};
    const ssize_t n = ::pread(fd_, holder, sizeof(holder) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) throw StateDirError(fmt::format("cannot lock {}: {}", file.string(), std::strerror(err)));
    std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string();
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw StateDirError(fmt::format("state directory {} is in use by another taskhost{}: each host needs a --state of its own",
                                 dir.string(), pid.empty() ? std::string() : " (pid " + pid + ")"));
  }
  // Ours now: say whose it is (best effort; the lock, not the text, is what excludes).
  const std::string pid = std::to_string(::getpid()) + "\n";
  const bool noted =
      ::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) == static_cast<ssize_t>(pid.size());
  (void)noted;
}

StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace taskhost
