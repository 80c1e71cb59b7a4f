// What a task id may be, where the host picks the rule: ids travel in URL paths, log lines and shell
// commands, so they are kept printable and unambiguous. The embedded transport refuses other ids; the
// CLI checks them before sending, on either transport. (The NATS transport itself carries any id up to
// kMaxTaskIdBytes: its subjects encode them, and the server closes a connection whose subject is longer
// than its line limit.)
#pragma once

#include "common/utf8.hpp"

#include <cstdint>
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
  // Beyond ASCII: well-formed UTF-8 (protobuf drops a string field that is not, and the id with it),
  // and none of the characters that make one id look like another: C1 controls, the bidirectional
  // overrides and isolates ("rtl\u202Eexe.txt" shows as "rtltxt.exe"), the line separators.
  for (size_t i = 0; i < id.size();) {
    const size_t n = utf8_sequence_length(id, i);
    if (n == 0) return "is not UTF-8";
    if (n > 1) {
      uint32_t cp = static_cast<uint8_t>(id[i]) & (0xFF >> (n + 1));
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<uint8_t>(id[i + k]) & 0x3F);
      if (cp <= 0x9F || cp == 0x200E || cp == 0x200F || (cp >= 0x2028 && cp <= 0x202E) ||
          (cp >= 0x2066 && cp <= 0x2069)) {
        return "may not contain control, line separator or text direction characters";
      }
    }
    i += n;
  }
  return {};
}

}  // namespace taskhost::transport
