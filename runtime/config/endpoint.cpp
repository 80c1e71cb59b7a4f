#include "config/endpoint.hpp"

#include <charconv>

namespace taskhost::config {

std::string Endpoint::to_string() const {
  if (is_unix) return "unix:" + path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<Endpoint> {
    if (error) *error = why;
    return std::nullopt;
  };
  Endpoint e;
  if (text.starts_with("unix:")) {
    e.is_unix = true;
    e.path = std::string(text.substr(5));
    if (e.path.empty()) return fail("empty unix socket path");
    return e;
  }
  if (text.starts_with("http://")) text.remove_prefix(7);
  while (text.ends_with('/')) text.remove_suffix(1);
  std::string_view host, port;
  if (text.starts_with('[')) {  // [v6]:port
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return fail("expected [IPV6]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return fail("expected HOST:PORT or unix:PATH");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) return fail("missing host");
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return fail("port must be a number 0-65535");
  e.host = std::string(host);
  e.port = static_cast<uint16_t>(value);
  return e;
}

}  // namespace taskhost::config
