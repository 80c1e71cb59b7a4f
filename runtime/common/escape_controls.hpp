// Text from plugins and tasks, written where a line is a record: a log line, a CLI table or event line.
// A CR/LF in it could forge a record of its own, and an ESC sequence repaint the operator's terminal, so
// control characters other than the tab are written escaped, as in C ("\n", "\r", "\x1b"). JSON output
// escapes them by itself and does not need this.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace taskhost {

inline void append_escaped_controls(std::string& out, std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 0x20 && u != 0x7f) || c == '\t') {
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += fmt::format("\\x{:02x}", u);
    }
  }
}

inline std::string escaped_controls(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  append_escaped_controls(out, text);
  return out;
}

}  // namespace taskhost
