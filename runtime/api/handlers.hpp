// The local API's request handlers for every endpoint except the two long-lived ones (wait, watch),
// which the server runs on its event loop. Endpoints and status codes: api/routes.hpp.
//
// Thread rule: handle() may block (a submit waits for its commit, a message for the plugin's answer);
// the server runs it on its worker pool, never on the network thread. Safe from several threads at once.
#pragma once

#include "api/routes.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace taskhost {
class Host;
namespace transport::local {
class LocalTransport;
}
}  // namespace taskhost

namespace taskhost::api {

// What the API serves. Both must outlive the server.
struct ApiContext {
  transport::local::LocalTransport& transport;
  Host& host;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// GET /v1/tasks page size: without ?limit, and the most one page may ask for.
inline constexpr size_t kDefaultListLimit = 100;
inline constexpr size_t kMaxListLimit = 1000;

HttpResponse json_response(unsigned status, std::string body);
HttpResponse error_response(unsigned status, std::string_view message, std::string_view code = {},
                            std::string_view task_id = {});

// Answers one request. Never throws: unexpected failures become 500 with the reason.
HttpResponse handle(ApiContext& ctx, const Route& route, const Target& target, std::string_view body);

// GET /v1/plugins and GET /metrics bodies.
std::string plugins_json(Host& host);
std::string metrics_text(transport::local::LocalTransport& transport, Host& host);

}  // namespace taskhost::api
