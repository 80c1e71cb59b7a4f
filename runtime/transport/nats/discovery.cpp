#include "transport/nats/discovery.hpp"

#include "common/log.hpp"
#include "tasks/discovery.hpp"

#include "taskhost/v1/assignment.pb.h"

#include <algorithm>

namespace taskhost::transport::nats {


DiscoveryResponder::DiscoveryResponder(Connection& connection, const Names& names, std::string worker_id,
                                       const registry::KindRegistry& registry)
    : connection_(connection), subject_(names.discover_subject()), worker_id_(std::move(worker_id)),
      registry_(registry) {}

DiscoveryResponder::~DiscoveryResponder() { stop(); }

void DiscoveryResponder::start() {
  if (sub_ != nullptr) return;
  // A core subscription: cnats renews it after every reconnect by itself.
  check(natsConnection_Subscribe(&sub_, connection_.nc(), subject_.c_str(), &DiscoveryResponder::on_request, this),
        "subscribe to " + subject_);
}

void DiscoveryResponder::stop() {
  // Drained: once it returns no callback runs, so nothing touches `this` after stop().
  drain_subscription(sub_);
  sub_ = nullptr;
}

void DiscoveryResponder::on_request(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
  auto* self = static_cast<DiscoveryResponder*>(closure);
  const char* reply = natsMsg_GetReply(msg);
  if (reply != nullptr && *reply != '\0') {
    std::string task_id = "discover";
    v1::TaskAssignment a;
    if (natsMsg_GetDataLength(msg) > 0 && a.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)) &&
        !a.task_id().empty()) {
      task_id = a.task_id();
    }
    const std::string bytes = tasks::discovery_answer(self->registry_, self->worker_id_, task_id).SerializeAsString();
    natsConnection_Publish(nc, reply, bytes.data(), static_cast<int>(bytes.size()));
  }
  natsMsg_Destroy(msg);
}

std::vector<v1::TaskCompletion> discover(Connection& connection, const Names& names, std::chrono::milliseconds wait) {
  natsInbox* inbox = nullptr;
  check(natsInbox_Create(&inbox), "discovery inbox");
  const std::string reply = inbox;
  natsInbox_Destroy(inbox);
  natsSubscription* sub = nullptr;
  check(natsConnection_SubscribeSync(&sub, connection.nc(), reply.c_str()), "subscribe for discovery answers");
  std::vector<v1::TaskCompletion> out;
  v1::TaskAssignment request;
  request.set_task_id("discover");
  request.mutable_list_components();
  const std::string bytes = request.SerializeAsString();
  const std::string subject = names.discover_subject();
  natsStatus s = natsConnection_PublishRequest(connection.nc(), subject.c_str(), reply.c_str(), bytes.data(),
                                               static_cast<int>(bytes.size()));
  // Hosts answer at their own pace: collect until `wait` has passed (there is no count to wait for).
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (s == NATS_OK) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    natsMsg* msg = nullptr;
    if (natsSubscription_NextMsg(&msg, sub, left.count()) != NATS_OK) break;
    v1::TaskCompletion c;
    if (c.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)) && !c.worker_id().empty()) {
      out.push_back(std::move(c));
    }
    natsMsg_Destroy(msg);
  }
  close_subscription(sub);
  check(s, "publish the discovery request on " + subject);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.worker_id() < b.worker_id(); });
  return out;
}

}  // namespace taskhost::transport::nats
