// The NATS JetStream transport: many hosts on many machines share work.
//
//   <P>_TASKS ──pull (≤ free slots)──▶ NatsTransport ──assign──▶ Router
//   <P>_CONTROL ──ordered consumer──▶       │ ◀──events/completions/checkpoints── (TaskOutbox)
//   KV task.<id> / host.<worker> ◀──────────┤──coalesced, async──▶ <P>_EVENTS
//
// Assignments: a work-queue stream with a subject per kind; every host serving a kind binds that kind's
// shared durable pull consumer and requests only as many messages as the router has free slots
// (puller.hpp). A task's ownership record (owner, attempt, assignment, last checkpoint) goes to the KV
// bucket when it has run for record_after or checkpoints; shorter tasks never need one.
//
// Ack modes:
//   on_receipt     the delivery is acked as soon as the host holds the task durably: its ownership
//                  record is stored, or (a task that ends sooner) its completion is. JetStream never
//                  redelivers a task a live host holds; the orchestrator owns timeouts and retries.
//   on_completion  acked after the completion is stored; in-progress acks every ack_wait/3 keep it;
//                  if the host dies JetStream redelivers it, and the next host re-attaches it from its
//                  record (attempt + 1) when the kind can, else runs it again.
//   Either way a task delivered more than max_deliver times ends failed (error kind "poisoned"), and so
//   does one whose hosts died running it max_deliver times (a plugin that crashes its host on it).
//
// Host death (on_receipt): hosts watch each other's liveness keys (host_liveness.hpp). One survivor
// takes over each of the dead host's recorded tasks by compare-and-set on its record (which fences any
// later write of the dead host's attempt): re-attached with attempt + 1 and the last checkpoint when the
// survivor serves the kind (the router ends it failed "orphaned" if the kind cannot re-attach), else
// handed back to its kind's queue, where a host serving the kind takes it and re-attaches it from the
// record (or it waits for one, as any queued task of an unserved kind does). Tasks it had not recorded
// yet were never acked and come back by redelivery.
//
// Discovery: every host answers a request on <P>.discover with its worker id and kinds (discovery.hpp).
//
// Steering and cancel: control_channel.hpp. Completions: the first one stored for a task id wins
// (event_batcher.hpp), so every task has exactly one terminal record whatever hosts die or retry.
//
// Lifecycle: construct (connects, creates streams and bucket), build the Host with this outbox, start(),
// ... drain(grace) on SIGTERM, stop(), destroy the Host, destroy the transport.
//
// Thread rule: TaskOutbox methods are safe from any thread and never block on the network. start(),
// drain() and stop() are for the owning thread.
#pragma once

#include "registry/kind_registry.hpp"
#include "tasks/router.hpp"
#include "transport/nats/nats_options.hpp"
#include "transport/outbox.hpp"

#include <chrono>
#include <cstdint>
#include <memory>

namespace taskhost::transport::nats {

class Names;

class NatsTransport final : public transport::TaskOutbox {
 public:
  // Connects (retrying up to options.connect_timeout) and makes sure the streams and the bucket exist.
  // Throws NatsError.
  explicit NatsTransport(NatsOptions options);
  ~NatsTransport() override;  // stop(), then closes the connection after flushing what is queued
  NatsTransport(const NatsTransport&) = delete;
  NatsTransport& operator=(const NatsTransport&) = delete;

  // Starts serving through `router`: re-attaches what a previous run of this worker id left, binds a
  // consumer per kind the registry serves (and follows its changes), reads the control stream, pulls.
  // Both must outlive stop(). Throws NatsError.
  void start(tasks::Router& router, registry::KindRegistry& registry);

  // SIGTERM: stop pulling (messages still arriving are handed back), let the router finish within
  // `grace` (then it cancels the rest), and wait until every completion is stored.
  void drain(std::chrono::milliseconds grace);

  // Stops pulling, control and background work; never calls the router afterwards. Outbox calls are
  // still published until destruction. Idempotent.
  void stop();

  const NatsOptions& options() const;
  const Names& names() const;

  struct Stats {
    uint64_t received = 0;       // task deliveries taken in
    uint64_t handed_back = 0;    // deliveries returned with a nak (no credit, draining)
    uint64_t completions = 0;    // completions stored by this host
    uint64_t duplicates = 0;     // completions refused because one was stored first
    uint64_t reattached = 0;     // tasks of dead hosts (or redelivered ones) resumed here
    uint64_t orphaned = 0;       // tasks of dead hosts ended failed "orphaned" here
    uint64_t handed_to_queue = 0;  // tasks of dead hosts handed back to their queue (kind not served here)
    uint64_t fenced = 0;         // local attempts dropped because another host took the task over
    uint64_t pull_requests = 0;
    size_t max_credits = 0;      // most tasks requested + not yet counted by the router, at once
    uint64_t intake_batches = 0; // hand-overs from the puller to the intake (each up to 64 deliveries)
    size_t largest_intake_batch = 0;
  };
  Stats stats() const;

  // TaskOutbox
  void on_event(const v1::TaskEvent& event) override;
  void on_heartbeat(const v1::Heartbeat& heartbeat) override;
  void on_completion(const v1::TaskCompletion& completion) override;
  void on_checkpoint(const std::string& task_id, uint32_t attempt, std::string_view bytes) override;
  void on_delivery(const v1::DeliveryReceipt& receipt) override;
  void on_capacity(std::string_view kind) override;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskhost::transport::nats
