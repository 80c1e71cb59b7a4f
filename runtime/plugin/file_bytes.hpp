// Reading a whole plugin file into memory: the one read both inspection and loading work from, so what
// is inspected is exactly what is hashed and opened, even if the file on disk changes meanwhile.
//
// Thread rule: safe from any thread. Ownership: the caller owns the returned bytes.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace taskhost::plugin {

// The bytes of `file` (symlinks followed), or nullopt with `error` set to the reason (no file prefix).
std::optional<std::string> read_file_bytes(const std::filesystem::path& file, std::string* error);

// The same for an open descriptor, from its first byte whatever its offset (pread): a plugin process
// reads the image it was handed this way, with no /proc needed.
std::optional<std::string> read_fd_bytes(int fd, std::string* error);

}  // namespace taskhost::plugin
