// The client side of a transport: what the CLI's submit/send/cancel/status/watch use, so every
// subcommand works the same against a local host (HTTP API) or a NATS deployment (no host API).
//
// Errors: every method throws ClientError with a one-line message naming what was wrong (unknown task,
// unreachable API, refused assignment ...). Thread rule: one object per thread.
#pragma once

#include "taskhost/v1/assignment.pb.h"
#include "taskhost/v1/cancel.pb.h"
#include "taskhost/v1/status.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

namespace taskhost::transport {

class ClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class TaskClient {
 public:
  virtual ~TaskClient() = default;

  struct Submitted {
    std::string task_id;    // generated when the assignment had none
    bool existing = false;  // a task of this id was submitted before: this is that task, the input unused
  };
  // Accepts the assignment durably.
  virtual Submitted submit_task(const v1::TaskAssignment& assignment) = 0;
  // The same, for callers that need only the id.
  std::string submit(const v1::TaskAssignment& assignment) { return submit_task(assignment).task_id; }
  virtual v1::DeliveryReceipt send(const v1::SteeringMessage& message) = 0;
  virtual v1::DeliveryReceipt cancel(const v1::CancelRequest& request) = 0;
  // One task (throws ClientError "unknown task 'ID'" if none) or every known task.
  virtual v1::TaskStatus status(const std::string& task_id) = 0;
  virtual v1::TaskStatusList list() = 0;
  // Streams events and completions (of one task, or all when task_id is empty) until `on_item` returns
  // false or `timeout` passes (zero = no limit). One task's stream also ends after its completion; an
  // unknown task id throws ClientError.
  virtual void watch(const std::string& task_id, const std::function<bool(const v1::WatchItem&)>& on_item,
                     std::chrono::milliseconds timeout) = 0;
  // Blocks until the task ended (or timeout, then throws) and returns its completion.
  virtual v1::TaskCompletion wait(const std::string& task_id, std::chrono::milliseconds timeout) = 0;
};

}  // namespace taskhost::transport
