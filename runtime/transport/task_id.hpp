// What a task id may be, where the host picks the rule: ids travel in URL paths, log lines and shell
// commands, so they are kept printable and unambiguous. The embedded transport refuses other ids; the
// CLI checks them before sending, on either transport. (The NATS transport itself carries any id: its
// subjects encode them.)
#pragma once

#include <string>
#include <string_view>

namespace taskhost::transport {

inline constexpr size_t kMaxTaskIdBytes = 256;

// Empty when `id` is acceptable; otherwise what is wrong with it, to follow "field 'task_id' ".
inline std::string task_id_problem(std::string_view id) {
  if (id.size() > kMaxTaskIdBytes) return "is longer than 256 characters";
  for (const char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '/' || c == '?' || c == '#' || c == '%') {
      return "may not contain spaces, control characters, '/', '?', '#' or '%'";
    }
  }
  return {};
}

}  // namespace taskhost::transport
