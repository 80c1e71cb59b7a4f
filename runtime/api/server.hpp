// The local HTTP+JSON API server (Boost.Beast over Boost.Asio, C++20 coroutines). Endpoints:
// api/routes.hpp.
//
// One network thread runs every connection; requests that may block (a submit waits for its commit, a
// message for the plugin's answer) run on a small worker pool and resume on the network thread. The two
// long-lived requests — GET .../wait and GET /v1/watch — wait on the network thread without a thread of
// their own, woken by the transport's subscription.
//
// Thread rule: construct, bind(), start() and stop() from one thread. The context given to start() must
// outlive the server, or its stop().
#pragma once

#include "api/handlers.hpp"
#include "config/endpoint.hpp"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace taskhost::api {

class ApiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ServerOptions {
  std::vector<config::Endpoint> listen;                // at least one
  size_t worker_threads = 4;                           // for the blocking handlers
  std::chrono::milliseconds keepalive{10'000};         // blank line on an idle watch stream
  // A connection that sends no complete request for this long is closed: idle keep-alive connections,
  // and clients that never finish a request. Not while a watch or wait is streaming (its own deadlines
  // and keep-alives govern it). 0 = never.
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds default_wait{30'000};      // GET .../wait without timeout_ms
  std::chrono::milliseconds max_wait{300'000};
  // Host header names clients use besides IP literals, "localhost" and the listen addresses' names
  // (request_guard.hpp: requests naming any other host are refused).
  std::vector<std::string> allowed_hosts;
};

class ApiServer {
 public:
  explicit ApiServer(ServerOptions options);
  ~ApiServer();  // stop()
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds every endpoint (connections wait in the backlog until start()). Throws ApiError naming the
  // address that could not be bound (nothing is left listening then). Needs no host: a host finds out
  // that its address is taken before it loads a plugin or changes any state.
  void bind();
  // bind() if not done, then serves `context` on a thread of its own.
  void start(ApiContext context);
  // The bound addresses, with the real port where port 0 was asked for: "127.0.0.1:40123", "unix:/p".
  std::vector<std::string> addresses() const;
  // Stops accepting, drops open connections, waits for running handlers. Idempotent.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskhost::api
