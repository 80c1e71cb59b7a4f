// One NATS connection as the transport uses it: servers, credentials and TLS from NatsOptions; reconnect
// forever (a restarted server or a moved cluster member is picked up again, publishes made meanwhile are
// buffered); and a JetStream context for synchronous API calls.
//
// Errors: NatsError carries the cnats status and, for JetStream API errors, the server's error code.
//
// Thread rule: the object is safe from any thread (cnats connections are). The event listeners run on a
// cnats thread and must not block. Not copyable, not movable (cnats holds its address).
#pragma once

#include "transport/nats/nats_options.hpp"

#include <nats/nats.h>

#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::transport::nats {

inline constexpr int kJsWrongLastSequence = 10071;  // a compare-and-set publish lost
inline constexpr int kJsNoMessageFound = 10037;
inline constexpr int kJsStreamNotFound = 10059;
inline constexpr int kJsConsumerNotFound = 10014;
inline constexpr int kJsStreamNameInUse = 10058;

class NatsError : public std::runtime_error {
 public:
  NatsError(const std::string& what, natsStatus status, int js_code)
      : std::runtime_error(what), status_(status), js_code_(js_code) {}
  natsStatus status() const { return status_; }
  int js_code() const { return js_code_; }

 private:
  natsStatus status_;
  int js_code_;
};

// "<what>: <status text> (<detail>)"; the detail is cnats' last error on this thread, if any.
std::string describe(natsStatus status, std::string_view what, int js_code = 0);
// Throws NatsError unless `status` is NATS_OK.
void check(natsStatus status, std::string_view what, int js_code = 0);
// The server list with passwords and tokens in URLs replaced by "***", for messages and logs.
std::string redact_url(const std::string& urls);

// Unsubscribes and frees `sub`; null is a no-op. A callback already running may still finish after this
// returns: where one must not, drain the subscription instead.
void close_subscription(natsSubscription* sub);
// Takes the subscription out of `slot` under `mu`, then closes it outside the lock, so a callback that
// needs `mu` can finish meanwhile.
void close_subscription(std::mutex& mu, natsSubscription*& slot);

class Connection {
 public:
  // Connects, retrying for up to options.connect_timeout while no server answers; refused credentials
  // and TLS mismatches throw at once with a hint. `name` shows in the server's connection list.
  Connection(const NatsOptions& options, const std::string& name);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  natsConnection* nc() const { return nc_; }
  jsCtx* js() const { return js_; }  // Wait = 5 s; for admin calls, KV and synchronous publishes
  bool connected() const;
  // How many servers the client knows (the URLs it was given plus those the cluster announced).
  size_t known_servers() const;

  // Called after every reconnect (on a cnats thread). Register before relying on it; never removed.
  void on_reconnected(std::function<void()> listener);
  void on_disconnected(std::function<void()> listener);

 private:
  static void reconnected_cb(natsConnection* nc, void* closure);
  static void disconnected_cb(natsConnection* nc, void* closure);
  static void error_cb(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure);

  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::mutex mu_;
  std::vector<std::function<void()>> reconnected_;
  std::vector<std::function<void()>> disconnected_;
};

}  // namespace taskhost::transport::nats
