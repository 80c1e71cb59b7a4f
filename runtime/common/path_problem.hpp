// Why a path given by the operator cannot be used as the file or directory it should be, in words that
// name the real cause: "no such file" for /dev/null, a FIFO or a symlink loop sent people looking for a
// typo.
#pragma once

#include <filesystem>
#include <string>

namespace taskhost {

// regular_file: a plugin file; data_file: any regular file (input); program: a regular file we may execute.
enum class PathWant { regular_file, directory, program, data_file };

// Empty when `path` is what is wanted (following symlinks); otherwise what it is instead, e.g.
// "does not exist", "is a directory, not a file", "is a FIFO, not a regular file", "is a dangling
// symbolic link", "cannot be examined: Too many levels of symbolic links".
std::string path_problem(const std::filesystem::path& path, PathWant want);

}  // namespace taskhost
