#include "flat_json.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace interactive {
namespace {

size_t skip_space(std::string_view s, size_t at) {
  while (at < s.size() && std::isspace(static_cast<unsigned char>(s[at]))) ++at;
  return at;
}

// Position of the value of member `key`, or npos.
size_t value_of(std::string_view json, std::string_view key) {
  const std::string quoted = "\"" + std::string(key) + "\"";
  for (size_t at = json.find(quoted); at != std::string_view::npos; at = json.find(quoted, at + 1)) {
    const size_t colon = skip_space(json, at + quoted.size());
    if (colon < json.size() && json[colon] == ':') return skip_space(json, colon + 1);
  }
  return std::string_view::npos;
}

}  // namespace

bool looks_like_object(std::string_view json) {
  const size_t at = skip_space(json, 0);
  return at < json.size() && json[at] == '{';
}

std::optional<double> json_number(std::string_view json, std::string_view key) {
  const size_t at = value_of(json, key);
  if (at == std::string_view::npos) return std::nullopt;
  const std::string rest(json.substr(at, 32));
  char* end = nullptr;
  const double value = std::strtod(rest.c_str(), &end);
  if (end == rest.c_str()) return std::nullopt;
  return value;
}

std::optional<bool> json_bool(std::string_view json, std::string_view key) {
  const size_t at = value_of(json, key);
  if (at == std::string_view::npos) return std::nullopt;
  if (json.substr(at, 4) == "true") return true;
  if (json.substr(at, 5) == "false") return false;
  return std::nullopt;
}

std::string json_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace interactive
