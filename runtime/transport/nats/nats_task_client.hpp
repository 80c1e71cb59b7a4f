// The client side over NATS: what `taskhost submit|send|cancel|status|watch --nats URL` use, with no host
// API involved. Everything goes through the same streams and bucket the hosts use (names.hpp):
//   submit  writes the task's queued record (state PENDING, no owner), then stores the assignment on
//           <P>.tasks.<kind> (Nats-Msg-Id = task id and attempt, so a resubmit is a no-op).
//   send / cancel  store the message on <P>.control.<task> and wait briefly for the holding host's
//           DeliveryReceipt; with no answer, the records say what became of it: TASK_ENDED when a
//           completion exists, ACCEPTED (kept, applied when a host starts the task) when the task is
//           queued or held, UNKNOWN_TASK when nothing is known of it (the message is kept all the same).
//   status  the completion if the task ended, else its record and its latest events.
//   watch / wait  an ordered consumer over the task's events subjects (or all of them).
//
// Errors: ClientError with a one-line reason. Thread rule: one object per thread (TaskClient's rule).
#pragma once

#include "transport/client.hpp"
#include "transport/nats/nats_options.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace taskhost::transport::nats {

class Connection;
class Names;
class RecordStore;

class NatsTaskClient final : public transport::TaskClient {
 public:
  // Connects (retrying up to options.connect_timeout) and creates the streams and bucket if missing.
  explicit NatsTaskClient(NatsOptions options);
  ~NatsTaskClient() override;
  NatsTaskClient(const NatsTaskClient&) = delete;
  NatsTaskClient& operator=(const NatsTaskClient&) = delete;

  Submitted submit_task(const v1::TaskAssignment& assignment) override;
  v1::DeliveryReceipt send(const v1::SteeringMessage& message) override;
  v1::DeliveryReceipt cancel(const v1::CancelRequest& request) override;
  v1::TaskStatus status(const std::string& task_id) override;
  v1::TaskStatusList list() override;
  void watch(const std::string& task_id, const std::function<bool(const v1::WatchItem&)>& on_item,
             std::chrono::milliseconds timeout) override;
  v1::TaskCompletion wait(const std::string& task_id, std::chrono::milliseconds timeout) override;

  // Every live host's answer to a discovery request (discovery.hpp): worker id and loaded kinds, sorted
  // by worker id; collected for `wait`. Not part of TaskClient: the embedded API has one host.
  std::vector<v1::TaskCompletion> discover(std::chrono::milliseconds wait = std::chrono::milliseconds(500));

  // How long send/cancel wait for the holding host's receipt before answering from the records.
  void set_receipt_wait(std::chrono::milliseconds wait) { receipt_wait_ = wait; }

 private:
  // Ends a task still queued (no host holds it) right here: its record marked canceled, its completion
  // stored. Nothing when a host holds it, or it is not queued.
  std::optional<v1::DeliveryReceipt> cancel_queued(const v1::CancelRequest& request);
  v1::DeliveryReceipt control(const std::string& task_id, const std::string& message_id, const char* type,
                              const std::string& bytes);

  NatsOptions options_;
  std::unique_ptr<Names> names_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<RecordStore> store_;
  std::chrono::milliseconds receipt_wait_{2'000};
};

}  // namespace taskhost::transport::nats
