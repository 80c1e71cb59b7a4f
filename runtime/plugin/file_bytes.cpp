#include "plugin/file_bytes.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace taskhost::plugin {

std::optional<std::string> read_file_bytes(const std::filesystem::path& file, std::string* error) {
  // POSIX I/O rather than iostreams: the errno text is what an operator needs ("Permission denied").
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (error) *error = std::string("cannot open: ") + std::strerror(errno);
    return std::nullopt;
  }
  std::optional<std::string> bytes = read_fd_bytes(fd, error);
  ::close(fd);
  return bytes;
}

std::optional<std::string> read_fd_bytes(int fd, std::string* error) {
  std::string bytes;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) bytes.reserve(static_cast<size_t>(st.st_size));
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof(buffer), static_cast<off_t>(bytes.size()));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (error) *error = std::string("cannot read: ") + std::strerror(errno);
      return std::nullopt;
    }
    bytes.append(buffer, static_cast<size_t>(n));
  }
  return bytes;
}

}  // namespace taskhost::plugin
