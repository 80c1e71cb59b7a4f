#include "common/path_problem.hpp"

#include <unistd.h>

namespace taskhost {
namespace fs = std::filesystem;

namespace {

const char* type_name(fs::file_type t) {
  switch (t) {
    case fs::file_type::regular: return "a regular file";
    case fs::file_type::directory: return "a directory";
    case fs::file_type::fifo: return "a FIFO";
    case fs::file_type::socket: return "a socket";
    case fs::file_type::character: return "a character device";
    case fs::file_type::block: return "a block device";
    default: return "not a regular file or directory";
  }
}

}  // namespace

std::string path_problem(const fs::path& path, PathWant want) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (st.type() == fs::file_type::not_found) {
    std::error_code lec;
    if (fs::is_symlink(fs::symlink_status(path, lec))) return "is a dangling symbolic link";
    return "does not exist";
  }
  if (ec) return "cannot be examined: " + ec.message();  // a symlink loop, a directory we may not search
  const bool ok = want == PathWant::directory ? st.type() == fs::file_type::directory
                                              : st.type() == fs::file_type::regular;
  if (ok && want == PathWant::program && ::access(path.c_str(), X_OK) != 0) return "is not executable";
  if (ok) return {};
  const char* wanted = want == PathWant::directory ? ", not a directory"
                       : want == PathWant::program   ? ", not a program"
                       : want == PathWant::data_file ? ", not a regular file"
                                                     : ", not a plugin file";
  return std::string("is ") + type_name(st.type()) + wanted;
}

}  // namespace taskhost
