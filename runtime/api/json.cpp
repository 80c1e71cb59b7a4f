#include "api/json.hpp"
#include "api/duplicate_keys.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <google/protobuf/util/json_util.h>

#include "common/log.hpp"

#include <fmt/format.h>

namespace taskhost::api {
namespace json = boost::json;
namespace pbu = google::protobuf::util;

std::string to_json(const google::protobuf::Message& message) {
  pbu::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  if (const auto status = pbu::MessageToJsonString(message, &out, options); !status.ok()) {
    log::error("api: cannot write a {} as JSON: {}", message.GetTypeName(), std::string(status.message()));
    return "{}";
  }
  return out;
}

json::value to_json_value(const google::protobuf::Message& message) {
  // Our own output, re-read to be embedded in a reply: deeper than a request may be (a task's output
  // sits a few levels down in a task list), so the default limit of 32 levels does not apply.
  json::parse_options options;
  options.max_depth = 256;
  return json::parse(to_json(message), {}, options);
}

std::optional<std::string> from_json(std::string_view text, google::protobuf::Message& message, bool ignore_unknown) {
  pbu::JsonParseOptions options;
  options.ignore_unknown_fields = ignore_unknown;
  const auto status = pbu::JsonStringToMessage(std::string(text), &message, options);
  if (status.ok()) return std::nullopt;
  // protobuf's words, made readable: its first line only (the rest repeats the text with a caret under
  // the fault), and a duplicate key said as such rather than as a map field of the Struct it fills.
  std::string why(status.message());
  if (const auto nl = why.find('\n'); nl != std::string::npos) why.resize(nl);
  if (const auto at = why.find("Repeated map key: "); at != std::string::npos) {
    std::string key = why.substr(at + 18);
    if (const auto end = key.find(" is already set"); end != std::string::npos) key.resize(end);
    why = "an object has the key " + key + " twice";
  }
  return why;
}

namespace {

std::optional<json::object> parse_object(std::string_view body, std::string& why) {
  if (body.empty()) {
    why = "request body is empty; expected a JSON object";
    return std::nullopt;
  }
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    why = "request body is not valid JSON: " + ec.message();
    return std::nullopt;
  }
  if (!v.is_object()) {
    why = "request body must be a JSON object";
    return std::nullopt;
  }
  if (auto key = first_duplicate_key(body)) {
    why = fmt::format("request body has the key \"{}\" twice in one object", *key);
    return std::nullopt;
  }
  return std::move(v.as_object());
}

// Any JSON value as a google.protobuf.Value.
std::optional<std::string> to_value(const json::value& v, google::protobuf::Value& out, std::string_view field) {
  if (auto why = from_json(json::serialize(v), out)) return fmt::format("field '{}': {}", field, *why);
  return std::nullopt;
}

std::optional<std::string> string_field(const json::value& v, std::string_view field, std::string& out) {
  if (!v.is_string()) return fmt::format("field '{}' must be a string", field);
  out = std::string(v.as_string());
  return std::nullopt;
}

}  // namespace

std::optional<std::string> parse_submit_body(std::string_view body, v1::TaskAssignment& out) {
  std::string why;
  auto obj = parse_object(body, why);
  if (!obj) return why;
  if (!obj->contains("kind")) {
    if (auto e = from_json(body, out)) return "not a TaskAssignment (nor {\"kind\": ...}): " + *e;
    return std::nullopt;
  }
  auto* exec = out.mutable_execute();
  exec->set_attempt(1);
  for (const auto& [key, value] : *obj) {
    if (key == "kind") {
      std::string kind;
      if (auto e = string_field(value, "kind", kind)) return e;
      exec->set_component_id(kind);
    } else if (key == "input") {
      if (auto e = to_value(value, *exec->mutable_input(), "input")) return e;
    } else if (key == "id" || key == "task_id") {
      std::string id;
      if (auto e = string_field(value, key, id)) return e;
      out.set_task_id(id);
    } else if (key == "heartbeat_interval_secs") {
      if (!value.is_int64() || value.as_int64() < 0 || value.as_int64() > 3600)
        return std::string("field 'heartbeat_interval_secs' must be an integer 0-3600");
      out.set_heartbeat_interval_secs(static_cast<uint32_t>(value.as_int64()));
    } else {
      return fmt::format("unknown field '{}' (expected kind, input, id, heartbeat_interval_secs)",
                         std::string_view(key));
    }
  }
  if (!exec->has_input()) exec->mutable_input()->mutable_struct_value();  // {} rather than null
  return std::nullopt;
}

std::optional<std::string> parse_message_body(std::string_view body, const std::string& task_id,
                                              v1::SteeringMessage& out) {
  std::string why;
  auto obj = parse_object(body, why);
  if (!obj) return why;
  if (obj->contains("parts")) {
    if (auto e = from_json(body, out)) return "not a SteeringMessage: " + *e;
  } else {
    std::string text;
    for (const auto& [key, value] : *obj) {
      if (key == "text") {
        if (auto e = string_field(value, "text", text)) return e;
        out.add_parts()->set_text(text);
      } else if (key == "data") {
        if (auto e = to_value(value, *out.add_parts()->mutable_data(), "data")) return e;
      } else if (key == "reply_to" || key == "in_reply_to") {
        std::string r;
        if (auto e = string_field(value, key, r)) return e;
        out.set_in_reply_to(r);
      } else if (key == "message_id") {
        std::string m;
        if (auto e = string_field(value, key, m)) return e;
        out.set_message_id(m);
      } else {
        return fmt::format("unknown field '{}' (expected text, data, reply_to, message_id, or parts)",
                           std::string_view(key));
      }
    }
    if (out.parts_size() == 0) return std::string("a message needs 'text' or 'data'");
  }
  if (!out.task_id().empty() && out.task_id() != task_id) {
    return fmt::format("field 'task_id' ('{}') does not match the task in the path ('{}')", out.task_id(), task_id);
  }
  out.set_task_id(task_id);
  return std::nullopt;
}

std::string error_body(std::string_view message, std::string_view code, std::string_view task_id) {
  json::object o;
  o["error"] = message;
  if (!code.empty()) o["code"] = code;
  if (!task_id.empty()) o["task_id"] = task_id;
  return json::serialize(o);
}

}  // namespace taskhost::api
