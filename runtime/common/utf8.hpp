// UTF-8 checks for text that comes from plugins: kind names, and the strings of sink calls.
//
// Why: everything a plugin says ends up in protobuf string fields and JSON (the API, the CLI, NATS
// events). protobuf refuses to serialize a string field that is not UTF-8 (it logs and the field, or
// the rest of the message, is lost), and JSON text with raw invalid bytes is not JSON: one plugin's
// bad bytes made `taskhost plugins` and the task list unreadable for every plugin.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace taskhost {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates, at most
// U+10FFFF), or 0 if there is none.
inline size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t n = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

inline bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// `s` with every byte that does not start a well-formed sequence replaced by U+FFFD: the text stays
// readable and says where it was broken, instead of being dropped.
inline std::string utf8_sanitized(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

// Where to cut `s` to keep at most `max` bytes without splitting a character: `max`, moved back past
// the continuation bytes (at most 3) of a character the cut would split. s.size() when it fits.
inline size_t utf8_cut(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t cut = max;
  for (int k = 0; k < 3 && cut > 0 && (static_cast<uint8_t>(s[cut]) & 0xC0) == 0x80; ++k) --cut;
  return cut;
}

}  // namespace taskhost
