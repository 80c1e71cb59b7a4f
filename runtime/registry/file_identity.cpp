#include "registry/file_identity.hpp"

#include <sys/stat.h>

#include <algorithm>

namespace taskhost::registry {

bool FileIdentity::settled(std::chrono::system_clock::time_point now, std::chrono::nanoseconds margin) const {
  const int64_t last_change = std::max(mtime_ns, ctime_ns);
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  return now_ns - last_change >= margin.count();
}

std::optional<FileIdentity> identify(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return FileIdentity{st.st_dev, st.st_ino, st.st_size,
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                      static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec};
}

}  // namespace taskhost::registry
