// Reading a whole plugin file into memory: the one read both inspection and loading work from, so what
// is inspected is exactly what is hashed and opened, even if the file on disk changes meanwhile.
//
// Thread rule: safe from any thread. Ownership: the caller owns the returned bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>

namespace taskhost::plugin {

// The largest plugin file read. A whole file is held in memory (and hashed) before it is loaded: a
// multi-gigabyte file dropped into the plugins directory (a sparse one costs no disk) would otherwise
// take the host's memory, and a file that is endless (a /proc file behind a symlink) all of it.
inline constexpr uint64_t kMaxPluginFileBytes = uint64_t{1} << 30;

// The bytes of `file` (symlinks followed), or nullopt with `error` set to the reason (no file prefix).
// A file larger than `limit` is refused without being read.
std::optional<std::string> read_file_bytes(const std::filesystem::path& file, std::string* error,
                                           uint64_t limit = kMaxPluginFileBytes);

// The same for an open descriptor, from its first byte whatever its offset (pread): a plugin process
// reads the image it was handed this way, with no /proc needed.
std::optional<std::string> read_fd_bytes(int fd, std::string* error, uint64_t limit = kMaxPluginFileBytes);

}  // namespace taskhost::plugin
