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

}  // namespace taskhost::plugin
