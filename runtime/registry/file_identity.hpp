// What identifies one version of a file without reading it: device, inode, size, mtime and ctime, as
// stat(2) reports them through symlinks (so re-pointing a link, or replacing its target, changes it).
//
// Timestamps have a coarse granularity (a clock tick, a whole second on some filesystems), so a file
// rewritten within the tick of its last write can keep its identity: an identity is only trusted to
// mean "same content" once it is older than that granularity (see `settled`), as git does with its index.
//
// Thread rule: plain values and free functions; safe from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>

namespace taskhost::registry {

struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;  // since the Unix epoch
  int64_t ctime_ns = 0;
  bool operator==(const FileIdentity&) const = default;

  // True when the last change (mtime or ctime) lies at least `margin` before `now`: a later write
  // within the same timestamp tick can no longer go unnoticed.
  bool settled(std::chrono::system_clock::time_point now,
               std::chrono::nanoseconds margin = std::chrono::seconds(2)) const;
};

// The identity of the regular file at `file` (through symlinks), or nullopt when there is none: missing,
// a dangling link, a directory.
std::optional<FileIdentity> identify(const std::filesystem::path& file);

}  // namespace taskhost::registry
