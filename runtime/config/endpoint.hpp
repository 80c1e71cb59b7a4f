// Where the local API listens / where a client finds it: "HOST:PORT" (TCP; "http://" prefix allowed) or
// "unix:/path/to.sock". Port 0 asks the system for a free port (the host reports the real one).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace taskhost::config {

struct Endpoint {
  bool is_unix = false;
  std::string host;  // TCP: numeric address or name
  uint16_t port = 0;
  std::string path;  // unix socket path

  std::string to_string() const;  // "127.0.0.1:7411" or "unix:/run/taskhost.sock"
};

// Parses `text`; on failure returns nullopt and sets `error` to a reason ("missing port", ...).
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error);

inline constexpr std::string_view kDefaultApiAddress = "127.0.0.1:7411";

}  // namespace taskhost::config
