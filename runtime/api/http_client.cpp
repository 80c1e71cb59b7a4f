#include "api/http_client.hpp"

#include "api/handlers.hpp"
#include "api/json.hpp"
#include "api/routes.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fmt/format.h>

#include <limits>

namespace taskhost::api {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using transport::ClientError;

namespace {

// The API's {"error": ...} text, or the body itself when it is not that shape.
std::string error_text(const HttpTaskClient::Response& r) {
  boost::json::error_code ec;
  const auto v = boost::json::parse(r.body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    if (const auto* e = o.if_contains("error"); e && e->is_string()) {
      std::string text(e->as_string());
      if (const auto* c = o.if_contains("code"); c && c->is_string() && !c->as_string().empty()) {
        text += " [" + std::string(c->as_string()) + "]";
      }
      return text;
    }
  }
  return fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200));
}

template <typename Message>
Message parse_reply(const HttpTaskClient::Response& r, std::string_view what) {
  Message m;
  if (auto why = from_json(r.body, m, /*ignore_unknown=*/true)) throw ClientError(fmt::format("unexpected {} from the API: {}", what, *why));
  return m;
}

}  // namespace

HttpTaskClient::HttpTaskClient(config::Endpoint endpoint) : endpoint_(std::move(endpoint)) {}

namespace {

struct Exchange {
  const std::string& method;
  const std::string& target;
  const std::string& body;
  std::string host;
  // Streaming: called with each piece of the body as it arrives; return false to stop reading.
  const std::function<bool(std::string_view)>* on_body = nullptr;
};

template <typename Socket>
HttpTaskClient::Response exchange(Socket& socket, const Exchange& x) {
  http::request<http::string_body> req{http::string_to_verb(x.method), x.target, 11};
  req.set(http::field::host, x.host);
  req.set(http::field::user_agent, "taskhost-cli");
  req.keep_alive(false);
  if (!x.body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = x.body;
  }
  req.prepare_payload();
  boost::system::error_code write_ec;
  http::write(socket, req, write_ec);

  beast::flat_buffer buffer;
  HttpTaskClient::Response out;
  if (write_ec) {
    // The server may have answered before reading the whole request (413 for a body over its limit) and
    // stopped reading: that answer, if it came, says more than the broken pipe does.
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    boost::system::error_code read_ec;
    http::read(socket, buffer, parser, read_ec);
    if (read_ec) throw boost::system::system_error(write_ec);
    out.status = parser.get().result_int();
    out.body = parser.get().body();
    return out;
  }
  if (x.on_body == nullptr) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read(socket, buffer, parser);
    out.status = parser.get().result_int();
    out.body = parser.get().body();
    return out;
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::read_header(socket, buffer, parser);
  out.status = parser.get().result_int();
  if (out.status != 200) {
    http::read(socket, buffer, parser);
    out.body = parser.get().body();
    return out;
  }
  bool stop = false;
  auto on_chunk = [&](std::uint64_t, beast::string_view piece, boost::system::error_code& ec) -> std::size_t {
    if (!stop && !(*x.on_body)(std::string_view(piece.data(), piece.size()))) {
      stop = true;
      ec = http::error::end_of_chunk;  // any error stops the read; this one is ours
    }
    return piece.size();
  };
  parser.on_chunk_body(on_chunk);
  boost::system::error_code ec;
  while (!parser.is_done() && !stop) {
    http::read_some(socket, buffer, parser, ec);
    if (ec == http::error::end_of_chunk && stop) break;
    if (ec) throw boost::system::system_error(ec);
  }
  return out;
}

}  // namespace

HttpTaskClient::Response HttpTaskClient::perform(const std::string& method, const std::string& target,
                                                 const std::string& body,
                                                 const std::function<bool(std::string_view)>* on_body) {
  net::io_context ioc;
  const Exchange x{method, target, body, endpoint_.is_unix ? std::string("localhost") : endpoint_.host, on_body};
  auto run = [&](auto& socket) {
    Response r;
    try {
      r = exchange(socket, x);
    } catch (const boost::system::system_error& e) {
      throw ClientError(fmt::format("connection to the taskhost API at {} failed: {}", endpoint_.to_string(),
                                    e.code().message()));
    }
    boost::system::error_code ignored;
    socket.shutdown(net::socket_base::shutdown_both, ignored);
    return r;
  };
  try {
    if (endpoint_.is_unix) {
      net::local::stream_protocol::socket socket(ioc);
      socket.connect(net::local::stream_protocol::endpoint(endpoint_.path));
      return run(socket);
    }
    net::ip::tcp::resolver resolver(ioc);
    net::ip::tcp::socket socket(ioc);
    net::connect(socket, resolver.resolve(endpoint_.host, std::to_string(endpoint_.port)));
    return run(socket);
  } catch (const boost::system::system_error& e) {
    throw ClientError(fmt::format("cannot reach the taskhost API at {}: {} (is `taskhost serve` running?)",
                                  endpoint_.to_string(), e.code().message()));
  }
}

HttpTaskClient::Response HttpTaskClient::request(const std::string& method, const std::string& target,
                                                 const std::string& body) {
  return perform(method, target, body, nullptr);
}

HttpTaskClient::Response HttpTaskClient::checked(const std::string& method, const std::string& target,
                                                 const std::string& body) {
  auto r = request(method, target, body);
  if (r.status < 200 || r.status >= 300) throw ClientError(error_text(r));
  return r;
}

transport::TaskClient::Submitted HttpTaskClient::submit_task(const v1::TaskAssignment& assignment) {
  const auto r = checked("POST", "/v1/tasks", to_json(assignment));
  boost::json::error_code ec;
  const auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("task_id") || !v.at("task_id").is_string()) {
    throw ClientError("unexpected submit reply from the API: " + r.body.substr(0, 200));
  }
  const auto* duplicate = v.as_object().if_contains("duplicate");
  return Submitted{std::string(v.at("task_id").as_string()), duplicate != nullptr && duplicate->is_bool() && duplicate->as_bool()};
}

v1::DeliveryReceipt HttpTaskClient::send(const v1::SteeringMessage& message) {
  const auto r = request("POST", "/v1/tasks/" + url_encode(message.task_id()) + "/messages", to_json(message));
  if (r.status == 400 || r.status >= 500) throw ClientError(error_text(r));
  return parse_reply<v1::DeliveryReceipt>(r, "receipt");
}

v1::DeliveryReceipt HttpTaskClient::cancel(const v1::CancelRequest& request_msg) {
  std::string body;
  if (!request_msg.reason().empty()) {
    body = fmt::format("{{\"reason\":{}}}", boost::json::serialize(boost::json::value(request_msg.reason().c_str())));
  }
  const auto r = request("POST", "/v1/tasks/" + url_encode(request_msg.task_id()) + "/cancel", body);
  if (r.status == 400 || r.status >= 500) throw ClientError(error_text(r));
  return parse_reply<v1::DeliveryReceipt>(r, "receipt");
}

v1::TaskStatus HttpTaskClient::status(const std::string& task_id) {
  return parse_reply<v1::TaskStatus>(checked("GET", "/v1/tasks/" + url_encode(task_id)), "status");
}

v1::TaskStatusList HttpTaskClient::list() {
  v1::TaskStatusList all;
  std::string after;
  do {
    TaskPage page = list_page(kMaxListLimit, after);
    for (auto& t : *page.tasks.mutable_tasks()) *all.add_tasks() = std::move(t);
    after = std::move(page.next_after);
  } while (!after.empty());
  return all;
}

HttpTaskClient::TaskPage HttpTaskClient::list_page(size_t limit, const std::string& after) {
  std::string target = "/v1/tasks?limit=" + std::to_string(limit);
  if (!after.empty()) target += "&after=" + url_encode(after);
  const auto r = checked("GET", target);
  TaskPage page;
  page.tasks = parse_reply<v1::TaskStatusList>(r, "task list");
  boost::json::error_code ec;
  const auto v = boost::json::parse(r.body, ec);
  if (!ec && v.is_object()) {
    if (const auto* next = v.as_object().if_contains("next_after"); next && next->is_string())
      page.next_after = std::string(next->as_string());
  }
  return page;
}

void HttpTaskClient::watch(const std::string& task_id, const std::function<bool(const v1::WatchItem&)>& on_item,
                           std::chrono::milliseconds timeout) {
  std::string target = "/v1/watch";
  std::string sep = "?";
  if (!task_id.empty()) {
    target += sep + "task=" + url_encode(task_id);
    sep = "&";
  }
  if (timeout.count() > 0) target += sep + "timeout_ms=" + std::to_string(timeout.count());
  std::string pending;
  std::string parse_error;
  std::string overflow;  // the host cut the stream: this reader fell too far behind
  const std::function<bool(std::string_view)> on_body = [&](std::string_view piece) {
    pending.append(piece);
    size_t start = 0;
    for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      const std::string_view line(pending.data() + start, nl - start);
      if (line.empty()) continue;  // keep-alive
      v1::WatchItem item;
      if (auto why = from_json(line, item, /*ignore_unknown=*/true)) {
        parse_error = *why;
        return false;
      }
      if (item.has_overflow()) {
        overflow = item.overflow();
        return false;
      }
      if (!on_item(item)) return false;
    }
    pending.erase(0, start);
    return true;
  };
  const Response r = perform("GET", target, {}, &on_body);
  if (r.status != 200) throw ClientError(error_text(r));
  if (!parse_error.empty()) throw ClientError("unexpected watch item from the API: " + parse_error);
  if (!overflow.empty()) throw ClientError(overflow + " (see `taskhost status` for where the task is now)");
}

v1::TaskCompletion HttpTaskClient::wait(const std::string& task_id, std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const bool forever = timeout.count() <= 0;
  const auto deadline = clock::now() + timeout;
  for (;;) {
    // Long polls of at most a minute, so a dead host is noticed and a proxy never times the call out.
    auto slice = std::chrono::milliseconds(60'000);
    if (!forever) {
      slice = std::min(slice, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()));
      if (slice.count() < 0) slice = std::chrono::milliseconds(0);
    }
    const auto r = request("GET", "/v1/tasks/" + url_encode(task_id) + "/wait?timeout_ms=" + std::to_string(slice.count()));
    if (r.status == 200) return parse_reply<v1::TaskCompletion>(r, "completion");
    if (r.status != 202) throw ClientError(error_text(r));
    if (!forever && clock::now() >= deadline) {
      const auto s = parse_reply<v1::TaskStatus>(r, "status");
      throw ClientError(fmt::format("task '{}' has not ended after {} ms (state {})", task_id, timeout.count(),
                                    v1::TaskState_Name(s.state())));
    }
  }
}

std::string HttpTaskClient::plugins_json() { return checked("GET", "/v1/plugins").body; }
std::string HttpTaskClient::reload_json(bool migrate) {
  return checked("POST", migrate ? "/v1/reload?migrate=true" : "/v1/reload").body;
}
std::string HttpTaskClient::metrics_text() { return checked("GET", "/metrics").body; }
std::string HttpTaskClient::health_json() { return checked("GET", "/v1/health").body; }

}  // namespace taskhost::api
