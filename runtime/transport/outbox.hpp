// Where a task's output goes: the one interface between the router and a transport, in that direction.
//
// The router calls these from host threads, concurrently for different tasks and in order for one task.
// Implementations must be thread-safe, must not block for long (queue and return) and must never call
// back into the router synchronously. Nothing in runtime/ outside a transport includes a transport's
// headers: a transport implements TaskOutbox and calls the router; that is all either knows of the other.
#pragma once

#include "taskhost/v1/completion.pb.h"
#include "taskhost/v1/events.pb.h"
#include "taskhost/v1/heartbeat.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace taskhost::transport {

class TaskOutbox {
 public:
  virtual ~TaskOutbox() = default;

  // Every event of every task, in per-task order (state changes, progress, output, artifacts, input
  // requests, outbound messages).
  virtual void on_event(const v1::TaskEvent& event) = 0;

  // A heartbeat for a running task, from the router's single heartbeat timer.
  virtual void on_heartbeat(const v1::Heartbeat& heartbeat) = 0;

  // The task's one completion (the first wins; the router never sends a second for an attempt).
  virtual void on_completion(const v1::TaskCompletion& completion) = 0;

  // A new checkpoint for the task's current attempt: durable transports keep it for re-attach.
  virtual void on_checkpoint(const std::string& task_id, uint32_t attempt, std::string_view bytes) = 0;

  // The final outcome of a steering message that arrived before its task started (its receipt said
  // `queued`): delivered at the start, refused then, or never delivered because the task ended first.
  virtual void on_delivery(const v1::DeliveryReceipt& receipt) { (void)receipt; }

  // A slot of `kind` became free (a task ended): pulling transports may fetch more work.
  virtual void on_capacity(std::string_view kind) { (void)kind; }
};

}  // namespace taskhost::transport
