// JSON bodies of the local API: protobuf's JSON mapping for wire messages (field names as in the .proto
// files, e.g. "task_id"), Boost.JSON for the API's own small shapes (errors, the simple submit form).
#pragma once

#include "taskhost/v1/assignment.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <boost/json/value.hpp>

#include <google/protobuf/message.h>

#include <optional>
#include <string>
#include <string_view>

namespace taskhost::api {

// The message as JSON text (proto field names; default-valued fields omitted).
std::string to_json(const google::protobuf::Message& message);
// The message as a Boost.JSON value, to embed in a larger document.
boost::json::value to_json_value(const google::protobuf::Message& message);

// Parses `text` into `message`; on failure returns a one-line reason naming what was wrong. Request bodies
// are parsed strictly (an unknown field is an error naming it); replies with `ignore_unknown`, so a client
// reads what a newer host adds (and the "error" member beside a receipt).
std::optional<std::string> from_json(std::string_view text, google::protobuf::Message& message,
                                     bool ignore_unknown = false);

// A POST /v1/tasks body: a TaskAssignment, or the simple form
//   {"kind": "hello.greet", "input": {...any JSON...}, "id": "optional", "heartbeat_interval_secs": 5}
// Returns the reason (naming the field) when the body is neither.
std::optional<std::string> parse_submit_body(std::string_view body, v1::TaskAssignment& out);

// A POST /v1/tasks/{id}/messages body: a SteeringMessage (with "parts"), or the simple form
//   {"text": "...", "data": {...any JSON...}, "reply_to": "request id", "message_id": "optional"}
// The task id comes from the path; a body naming a different task is an error.
std::optional<std::string> parse_message_body(std::string_view body, const std::string& task_id,
                                              v1::SteeringMessage& out);

// {"error": message} plus optional extra members.
std::string error_body(std::string_view message, std::string_view code = {}, std::string_view task_id = {});

}  // namespace taskhost::api
