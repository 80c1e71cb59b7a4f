// Whether bytes are one well-formed JSON value (RFC 8259), so the test kit can refuse what the host would
// refuse: a JSON kind's output or message data that is not JSON. Validation only; builds nothing.
// Not part of the author's API. Thread rule: pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace taskhost::internal {

class JsonCheck {
 public:
  static bool valid(std::string_view text) {
    JsonCheck c(text);
    c.space();
    if (!c.value(0)) return false;
    c.space();
    return c.at_ == text.size();
  }

 private:
  explicit JsonCheck(std::string_view text) : s_(text) {}

  bool more() const { return at_ < s_.size(); }
  char peek() const { return more() ? s_[at_] : '\0'; }
  bool eat(char c) {
    if (peek() != c) return false;
    ++at_;
    return true;
  }
  void space() {
    while (more() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) ++at_;
  }
  bool word(std::string_view w) {
    if (s_.substr(at_, w.size()) != w) return false;
    at_ += w.size();
    return true;
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }
  static bool hex(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

  bool value(int depth) {
    if (depth > 256) return false;
    switch (peek()) {
      case '{':
        return object(depth);
      case '[':
        return array(depth);
      case '"':
        return string();
      case 't':
        return word("true");
      case 'f':
        return word("false");
      case 'n':
        return word("null");
      default:
        return number();
    }
  }
  bool object(int depth) {
    eat('{');
    space();
    if (eat('}')) return true;
    for (;;) {
      space();
      if (!string()) return false;
      space();
      if (!eat(':')) return false;
      space();
      if (!value(depth + 1)) return false;
      space();
      if (eat('}')) return true;
      if (!eat(',')) return false;
    }
  }
  bool array(int depth) {
    eat('[');
    space();
    if (eat(']')) return true;
    for (;;) {
      space();
      if (!value(depth + 1)) return false;
      space();
      if (eat(']')) return true;
      if (!eat(',')) return false;
    }
  }
  bool string() {
    if (!eat('"')) return false;
    while (more()) {
      const char c = s_[at_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') continue;
      const char e = peek();
      ++at_;
      if (e == 'u') {
        for (int i = 0; i < 4; ++i) {
          if (!hex(peek())) return false;
          ++at_;
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }
  bool number() {
    eat('-');
    if (eat('0')) {
    } else if (digit(peek())) {
      while (digit(peek())) ++at_;
    } else {
      return false;
    }
    if (eat('.')) {
      if (!digit(peek())) return false;
      while (digit(peek())) ++at_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++at_;
      if (!eat('+')) eat('-');
      if (!digit(peek())) return false;
      while (digit(peek())) ++at_;
    }
    return true;
  }

  std::string_view s_;
  std::size_t at_ = 0;
};

}  // namespace taskhost::internal
