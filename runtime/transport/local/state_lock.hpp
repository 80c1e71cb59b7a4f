// One host per state directory: an exclusive lock on STATE/taskhost.lock, held for the host's life.
//
// Why: two hosts on one state directory both "recover" the same tasks — the second re-attached a task
// the first was still running (attempt bumped under it) and ended its other tasks "orphaned". flock()
// is released by the kernel when the process dies however it dies, so a crashed host never leaves a
// stale lock behind; the file also names the holder's pid for the error message.
#pragma once

#include <filesystem>

namespace taskhost::transport::local {

class StateLock {
 public:
  // Takes the lock or throws StoreError naming the directory and, when known, the holder's pid.
  explicit StateLock(const std::filesystem::path& dir);
  ~StateLock();
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace taskhost::transport::local
