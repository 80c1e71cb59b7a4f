// Discovery over NATS: which hosts are there and which kinds each one serves.
//
// Every host subscribes to <P>.discover (core NATS, not a queue group, so every host hears it) and
// answers each request with a TaskCompletion shaped like the router's discovery answer: state SUCCEEDED,
// its worker id, and `components` listing every kind it has loaded. A client publishes one request and
// collects answers for a moment; there is no list of hosts anywhere to keep in sync.
//
// The request body may be empty or a TaskAssignment with `list_components` (its task id is echoed back).
// Nothing is stored: discovery is a question to whoever is alive now.
//
// Thread rule: DiscoveryResponder's methods are for the owning thread; it answers on a cnats thread.
// discover() blocks for up to `wait`: call it from a client thread, never from a cnats callback.
#pragma once

#include "registry/kind_registry.hpp"
#include "transport/nats/connection.hpp"
#include "transport/nats/names.hpp"

#include "taskhost/v1/completion.pb.h"

#include <chrono>
#include <string>
#include <vector>

namespace taskhost::transport::nats {

class DiscoveryResponder {
 public:
  DiscoveryResponder(Connection& connection, const Names& names, std::string worker_id,
                     const registry::KindRegistry& registry);
  ~DiscoveryResponder();  // stop()
  DiscoveryResponder(const DiscoveryResponder&) = delete;
  DiscoveryResponder& operator=(const DiscoveryResponder&) = delete;

  void start();  // throws NatsError
  void stop();   // no answer after it returns; idempotent

 private:
  static void on_request(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);

  Connection& connection_;
  const std::string subject_;
  const std::string worker_id_;
  const registry::KindRegistry& registry_;
  natsSubscription* sub_ = nullptr;
};

// Asks every host listening on `names` and returns the answers that arrived within `wait`, sorted by
// worker id. An empty result means no host answered (none running, or a different stream prefix).
std::vector<v1::TaskCompletion> discover(Connection& connection, const Names& names, std::chrono::milliseconds wait);

}  // namespace taskhost::transport::nats
