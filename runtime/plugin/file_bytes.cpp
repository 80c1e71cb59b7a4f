#include "plugin/file_bytes.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace taskhost::plugin {

namespace {

std::string too_large(uint64_t limit) {
  return "larger than " + std::to_string(limit >> 20) + " MiB, the most a plugin file may be";
}

}  // namespace

std::optional<std::string> read_file_bytes(const std::filesystem::path& file, std::string* error, uint64_t limit) {
  // POSIX I/O rather than iostreams: the errno text is what an operator needs ("Permission denied").
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error) *error = std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::optional<std::string> bytes = read_fd_bytes(fd, error, limit);
  ::close(fd);
  return bytes;
}

std::optional<std::string> read_fd_bytes(int fd, std::string* error, uint64_t limit) {
  std::string bytes;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    if (static_cast<uint64_t>(st.st_size) > limit) {
      if (error) *error = too_large(limit) + " (" + std::to_string(st.st_size) + " bytes)";
      return std::nullopt;
    }
    bytes.reserve(static_cast<size_t>(st.st_size));
  }
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof(buffer), static_cast<off_t>(bytes.size()));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (error) *error = std::string("cannot read: ") + std::strerror(errno);
      return std::nullopt;
    }
    // The size said nothing (a special file) or the file grows while it is read.
    if (bytes.size() + static_cast<size_t>(n) > limit) {
      if (error) *error = too_large(limit);
      return std::nullopt;
    }
    bytes.append(buffer, static_cast<size_t>(n));
  }
  return bytes;
}

}  // namespace taskhost::plugin
