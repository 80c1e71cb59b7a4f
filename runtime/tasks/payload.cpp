// Payload conversion sits on every task's path (input out, output and posted data back), so it avoids
// protobuf's reflection-based JSON utilities: JSON is parsed by Boost.JSON and written directly from the
// Value tree. The result is the same JSON protobuf's mapping gives (numbers in shortest round-trip form,
// integral values without a fraction), at a fraction of the cost.
#include "tasks/payload.hpp"

#include "common/json_string.hpp"

#include <boost/json/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace taskhost::tasks {
namespace {

using google::protobuf::Value;

// Set when a value was written in a form that does not decode back to itself.
struct Writer {
  std::string& out;
  bool lossy = false;
};

void write_number(Writer& w, double d) {
  std::string& out = w.out;
  // JSON has no NaN or infinities; protobuf's mapping writes them as strings, and so do we.
  if (std::isnan(d)) {
    out += "\"NaN\"";
    w.lossy = true;
  } else if (std::isinf(d)) {
    out += d > 0 ? "\"Infinity\"" : "\"-Infinity\"";
    w.lossy = true;
  } else if (d == std::trunc(d) && std::fabs(d) < 9007199254740992.0) {
    if (d == 0 && std::signbit(d)) w.lossy = true;  // written as 0
    fmt::format_to(std::back_inserter(out), "{}", static_cast<int64_t>(d));
  } else {
    fmt::format_to(std::back_inserter(out), "{}", d);  // shortest representation that round-trips
  }
}

void write_value(Writer& w, const Value& v) {
  std::string& out = w.out;
  switch (v.kind_case()) {
    case Value::kNumberValue: write_number(w, v.number_value()); break;
    case Value::kStringValue: append_json_string(out, v.string_value()); break;
    case Value::kBoolValue: out += v.bool_value() ? "true" : "false"; break;
    case Value::kStructValue: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, field] : v.struct_value().fields()) {
        if (!first) out.push_back(',');
        first = false;
        append_json_string(out, key);
        out.push_back(':');
        write_value(w, field);
      }
      out.push_back('}');
      break;
    }
    case Value::kListValue: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.list_value().values()) {
        if (!first) out.push_back(',');
        first = false;
        write_value(w, item);
      }
      out.push_back(']');
      break;
    }
    case Value::kNullValue:
    case Value::KIND_NOT_SET: out += "null"; break;
  }
}

void from_json(const boost::json::value& j, Value* out) {
  switch (j.kind()) {
    case boost::json::kind::null: out->set_null_value(google::protobuf::NULL_VALUE); break;
    case boost::json::kind::bool_: out->set_bool_value(j.get_bool()); break;
    case boost::json::kind::int64: out->set_number_value(static_cast<double>(j.get_int64())); break;
    case boost::json::kind::uint64: out->set_number_value(static_cast<double>(j.get_uint64())); break;
    case boost::json::kind::double_: out->set_number_value(j.get_double()); break;
    case boost::json::kind::string: out->set_string_value(std::string(j.get_string())); break;
    case boost::json::kind::array: {
      auto* list = out->mutable_list_value();
      for (const auto& item : j.get_array()) from_json(item, list->add_values());
      break;
    }
    case boost::json::kind::object: {
      auto* fields = out->mutable_struct_value()->mutable_fields();
      for (const auto& [key, item] : j.get_object()) from_json(item, &(*fields)[std::string(key)]);
      break;
    }
  }
}

}  // namespace

std::string encode_value(const Value& value, th_encoding encoding, bool* lossy) {
  std::string out;
  Writer w{out};
  if (encoding == TH_ENCODING_PROTOBUF) {
    value.SerializeToString(&out);
  } else {
    write_value(w, value);
  }
  if (lossy) *lossy = w.lossy;
  return out;
}

namespace {

// Nesting depth of `v`: a scalar is 1. Stops counting past `limit`.
int depth(const Value& v, int limit) {
  if (limit <= 0) return 1;
  int inner = 0;
  if (v.has_list_value()) {
    for (const auto& item : v.list_value().values()) inner = std::max(inner, depth(item, limit - 1));
  } else if (v.has_struct_value()) {
    for (const auto& [key, item] : v.struct_value().fields()) inner = std::max(inner, depth(item, limit - 1));
  }
  return 1 + inner;
}

std::string too_deep() {
  return "payload nests deeper than " + std::to_string(kMaxValueDepth) + " levels of arrays and objects";
}

}  // namespace

bool decode_value(std::span<const uint8_t> bytes, th_encoding encoding, Value* out, std::string* error) {
  out->Clear();
  if (bytes.empty()) {
    out->set_null_value(google::protobuf::NULL_VALUE);
    return true;
  }
  if (encoding == TH_ENCODING_PROTOBUF) {
    if (!out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      *error = "payload is not a serialized google.protobuf.Value (or nests too deep to read)";
      return false;
    }
    if (depth(*out, kMaxValueDepth + 1) > kMaxValueDepth) {
      *error = too_deep();
      out->Clear();
      return false;
    }
    return true;
  }
  boost::system::error_code ec;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  boost::json::parse_options options;
  options.max_depth = kMaxValueDepth;
  const boost::json::value parsed = boost::json::parse(text, ec, {}, options);
  if (ec == boost::json::error::too_deep) {
    *error = too_deep();
    return false;
  }
  if (ec) {
    *error = "payload is not valid JSON: " + ec.message();
    return false;
  }
  from_json(parsed, out);
  return true;
}

}  // namespace taskhost::tasks
