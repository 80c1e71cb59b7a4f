// The CLI's client of the local API: transport::TaskClient over HTTP (Boost.Beast, synchronous), plus the
// admin calls that only a local host has (plugins, reload, metrics, health).
//
// Every call opens one connection (TCP or unix socket) and closes it; errors throw
// transport::ClientError with one line naming what was wrong: the API's own {"error"} text, or
// "cannot reach the taskhost API at ADDR: ...".
//
// Thread rule: one object per thread (it holds no connection between calls).
#pragma once

#include "config/endpoint.hpp"
#include "transport/client.hpp"

#include <functional>
#include <string>
#include <string_view>

namespace taskhost::api {

class HttpTaskClient final : public transport::TaskClient {
 public:
  explicit HttpTaskClient(config::Endpoint endpoint);

  Submitted submit_task(const v1::TaskAssignment& assignment) override;
  v1::DeliveryReceipt send(const v1::SteeringMessage& message) override;
  v1::DeliveryReceipt cancel(const v1::CancelRequest& request) override;
  v1::TaskStatus status(const std::string& task_id) override;
  v1::TaskStatusList list() override;  // every task, oldest first: pages through GET /v1/tasks
  // One page of GET /v1/tasks: `limit` tasks after task `after` ("" = from the first). `next_after` is
  // the cursor of the next page, empty on the last one.
  struct TaskPage {
    v1::TaskStatusList tasks;
    std::string next_after;
  };
  TaskPage list_page(size_t limit, const std::string& after = {});
  // timeout zero: until the stream ends (the task's completion, with a task id) or on_item says stop.
  void watch(const std::string& task_id, const std::function<bool(const v1::WatchItem&)>& on_item,
             std::chrono::milliseconds timeout) override;
  // timeout zero: no limit (long polls until the task ends).
  v1::TaskCompletion wait(const std::string& task_id, std::chrono::milliseconds timeout) override;

  // Raw JSON/text of the admin endpoints.
  std::string plugins_json();
  std::string reload_json(bool migrate = false);  // migrate: re-attachable tasks move to the new generations
  std::string metrics_text();
  std::string health_json();

  struct Response {
    unsigned status = 0;
    std::string body;
  };
  // One request; throws ClientError only when the API cannot be reached or the reply is not HTTP.
  Response request(const std::string& method, const std::string& target, const std::string& body = {});

 private:
  Response perform(const std::string& method, const std::string& target, const std::string& body,
                   const std::function<bool(std::string_view)>* on_body);
  Response checked(const std::string& method, const std::string& target, const std::string& body = {});
  config::Endpoint endpoint_;
};

}  // namespace taskhost::api
