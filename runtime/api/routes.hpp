// The local API's endpoints and how a request target maps onto them. All bodies are JSON unless noted;
// errors are {"error": "...", "code"?: ERROR_CODE, "task_id"?: ID} with a matching HTTP status.
//
//   GET  /v1/health                     {"status":"ok","accepting":true,"active":N}
//   POST /v1/tasks                      body: TaskAssignment, or {"kind","input","id"?,"heartbeat_interval_secs"?}
//                                       201 {"task_id"} | 200 {"task_id","duplicate":true} (same id again)
//                                       400 malformed (names the field) | 422 refused, e.g. code
//                                       COMPONENT_NOT_FOUND (the task is recorded as failed) | 503 draining
//   GET  /v1/tasks[?limit=N][&after=ID] 200 TaskStatusList + "next_after": one page of every task accepted,
//                                       in the order accepted (stable: new tasks only append); N tasks
//                                       (default 100, 1..1000) after task ID; "next_after" (the last id)
//                                       is there when another page may follow. 400 names a bad parameter
//   GET  /v1/tasks/{id}                 200 TaskStatus | 404
//   POST /v1/tasks/{id}/messages        body: {"text","data"?,"reply_to"?,"message_id"?} or SteeringMessage
//                                       200 DeliveryReceipt (ACCEPTED) | 404 UNKNOWN_TASK | 409 TASK_ENDED |
//                                       422 UNSUPPORTED or REJECTED — always the receipt, plus "error"
//   POST /v1/tasks/{id}/cancel          body: optional {"reason"}; receipts as for messages
//   GET  /v1/tasks/{id}/wait?timeout_ms=N   long poll: 200 TaskCompletion once ended | 202 TaskStatus if
//                                       still running after N ms (default 30000, at most 300000) | 404
//   GET  /v1/watch[?task=ID][&timeout_ms=N] 200, chunked application/x-ndjson: one WatchItem per line
//                                       (an event or a completion); with task=ID its recorded events are
//                                       replayed first and the stream ends after its completion; blank
//                                       lines are keep-alives. 404 for an unknown task. A reader more
//                                       than 10,000 items or 16 MiB behind gets a last item
//                                       {"overflow": why} and the stream ends.
//   GET  /v1/plugins                    200 {"plugins":[{file,state,last_error,plugin,version,generation,
//                                       kinds,active_tasks,draining:[{generation,version,active_tasks}]}]}
//   POST /v1/reload[?migrate=true]      200 {"loaded":[...],"removed":[...],"errors":[...],"migrate":B}:
//                                       Host::reload (as SIGHUP); migrate (also as body {"migrate":true})
//                                       moves re-attachable tasks to the current generations
//   GET  /metrics                       200 Prometheus text format 0.0.4
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::api {

enum class Endpoint {
  health, submit, list, status, message, cancel, wait, watch, plugins, reload, metrics,
  not_found, method_not_allowed,
};

struct Route {
  Endpoint endpoint = Endpoint::not_found;
  std::string task_id;  // decoded, for the /v1/tasks/{id}... endpoints
  std::string allow;    // for method_not_allowed: the methods the path takes
};

struct Target {
  std::vector<std::string> segments;          // decoded path segments
  std::map<std::string, std::string> query;   // decoded
  bool ok = true;                             // false: malformed percent-encoding
};

// Splits "/v1/tasks/a%20b/wait?timeout_ms=5" into segments and query, percent-decoding both.
Target parse_target(std::string_view target);

Route route(std::string_view method, const Target& target);

// Percent-encodes one path segment or query value (unreserved characters pass through).
std::string url_encode(std::string_view text);

}  // namespace taskhost::api
