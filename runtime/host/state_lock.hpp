// One host per state directory (either transport: the local one keeps its tasks there, and both keep
// the crash ledger there): an exclusive lock on STATE/taskhost.lock, held for the host's life.
//
// Why: two hosts on one state directory both "recover" the same tasks — the second re-attached a task
// the first was still running (attempt bumped under it) and ended its other tasks "orphaned". flock()
// is released by the kernel when the process dies however it dies, so a crashed host never leaves a
// stale lock behind; the file also names the holder's pid for the error message.
#pragma once

#include <filesystem>
#include <stdexcept>

namespace taskhost {

// The state directory cannot be locked: in use by another host (named by pid when known), or unusable.
class StateDirError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StateLock {
 public:
  // Takes the lock or throws StateDirError naming the directory and, when known, the holder's pid.
  explicit StateLock(const std::filesystem::path& dir);
  ~StateLock();
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace taskhost
