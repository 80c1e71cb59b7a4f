// Reading a task's JSON input (or a checkpoint, or steering data) into typed fields, for the first-party
// plugins. Every error names the member it is about, because the message reaches whoever submitted the
// task as an INVALID_INPUT completion and must tell them what to fix.
//
// Header-only and compiled into each plugin separately (with the plugin's hidden visibility), so plugins
// share source, never symbols. Needs Boost.JSON (link Boost::json).
// Thread rule: pure functions over values the caller owns.
#pragma once

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <taskhost/sdk.hpp>

namespace taskhost::plugins {

// Parses `text` as a JSON object. `what` names the whole ("input", "checkpoint") in the error.
inline Status parse_object(std::string_view text, std::string_view what, boost::json::object* out) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) return Status::InvalidArgument(std::string(what) + " is not valid JSON: " + ec.message());
  if (!v.is_object()) return Status::InvalidArgument(std::string(what) + " must be a JSON object");
  *out = std::move(v.as_object());
  return Status::Ok();
}

// Refuses members outside `known`: a misspelt option ("timeout" for "timeout_ms") must not be silently
// ignored.
inline Status only_members(const boost::json::object& obj, std::string_view what,
                           std::initializer_list<std::string_view> known) {
  for (const auto& member : obj) {
    bool found = false;
    for (std::string_view k : known) found = found || member.key() == k;
    if (!found) return Status::InvalidArgument("unknown " + std::string(what) + " member '" +
                                               std::string(member.key()) + "'");
  }
  return Status::Ok();
}

// An integer member in [min, max]; absent (or null) leaves *out untouched. A JSON number with an integral
// value counts as an integer, because clients and the protobuf JSON mapping may write 5 as 5.0 or 5e0.
inline Status read_int(const boost::json::object& obj, std::string_view key, int64_t min, int64_t max,
                       std::optional<int64_t>* out) {
  const boost::json::value* v = obj.if_contains(key);
  if (v == nullptr || v->is_null()) return Status::Ok();
  const auto range_error = [&] {
    return Status::InvalidArgument("'" + std::string(key) + "' must be an integer from " + std::to_string(min) +
                                   " to " + std::to_string(max));
  };
  int64_t n = 0;
  if (v->is_int64()) {
    n = v->as_int64();
  } else if (v->is_uint64()) {
    if (v->as_uint64() > static_cast<uint64_t>(max)) return range_error();
    n = static_cast<int64_t>(v->as_uint64());
  } else if (v->is_double()) {
    const double d = v->as_double();
    if (!std::isfinite(d) || d != std::floor(d) || d < static_cast<double>(min) || d > static_cast<double>(max))
      return range_error();
    n = static_cast<int64_t>(d);
  } else {
    return range_error();
  }
  if (n < min || n > max) return range_error();
  *out = n;
  return Status::Ok();
}

// A string member; absent (or null) leaves *out untouched.
inline Status read_string(const boost::json::object& obj, std::string_view key, std::optional<std::string>* out) {
  const boost::json::value* v = obj.if_contains(key);
  if (v == nullptr || v->is_null()) return Status::Ok();
  if (!v->is_string()) return Status::InvalidArgument("'" + std::string(key) + "' must be a string");
  *out = std::string(v->as_string());
  return Status::Ok();
}

// A boolean member; absent (or null) leaves *out untouched.
inline Status read_bool(const boost::json::object& obj, std::string_view key, std::optional<bool>* out) {
  const boost::json::value* v = obj.if_contains(key);
  if (v == nullptr || v->is_null()) return Status::Ok();
  if (!v->is_bool()) return Status::InvalidArgument("'" + std::string(key) + "' must be true or false");
  *out = v->as_bool();
  return Status::Ok();
}

}  // namespace taskhost::plugins
