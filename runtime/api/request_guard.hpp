// What keeps web pages out of the local API.
//
// The API has no credentials: whoever can reach it can run tasks, and a host that loads exec.run runs
// programs for them. Loopback keeps other machines out, but not the browser of the machine's own user:
// any page can send a cross-site POST (a "simple" request needs no CORS preflight), and a page whose
// name is re-pointed at 127.0.0.1 (DNS rebinding) can also read the answers. Browsers mark both, and no
// legitimate client (the CLI, curl, scripts) sends those marks:
//   - an Origin header: browsers send it with every POST and every cross-origin request;
//   - a Host header naming something other than an address of this API: a rebinding page's requests
//     carry its own domain there.
// Requests over the unix socket are not checked: browsers cannot reach one.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::api {

struct RequestRefusal {
  int status;           // HTTP status
  std::string message;  // why, for the response body and the log
};

class RequestGuard {
 public:
  // `host_names`: names besides IP literals and "localhost" that clients use to reach this API (the
  // listen addresses' names, [api] allowed_hosts); compared without case.
  explicit RequestGuard(std::vector<std::string> host_names);

  // The refusal of a TCP request with these headers (nullopt: an absent header), or nullopt to serve it.
  std::optional<RequestRefusal> check(std::optional<std::string_view> origin,
                                      std::optional<std::string_view> host) const;

 private:
  bool known_host(std::string_view name) const;
  std::vector<std::string> names_;  // lower case
};

// The host part of a Host header value ("a.b:7411" → "a.b", "[::1]:7411" → "::1"); empty if malformed.
std::string host_header_name(std::string_view value);

}  // namespace taskhost::api
