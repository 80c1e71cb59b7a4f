// taskhost::Status — the result of every SDK call, in both directions: what an executor method returns
// to the host and what a TaskSink call answers. Never an exception.
//
// Ownership: a plain value; copy it freely. Thread rule: a Status is not shared, so none is needed.
#pragma once

#include <taskhost/plugin.h>

#include <string>
#include <utility>

namespace taskhost {

struct Status {
  th_status code = TH_OK;  // one of plugin.h's TH_* status codes
  std::string message;     // detail for the host's log and the task's error; may be empty

  bool ok() const { return code == TH_OK; }

  static Status Ok() { return {}; }
  // "Not implemented": a distinct answer, not a failure (the host tells the sender so).
  static Status Unsupported(std::string message = {}) { return {TH_UNSUPPORTED, std::move(message)}; }
  // The operation was attempted and failed.
  static Status Failed(std::string message) { return {TH_FAILED, std::move(message)}; }
  // The caller passed something malformed (bad input, unknown request id, ...).
  static Status InvalidArgument(std::string message) { return {TH_INVALID_ARGUMENT, std::move(message)}; }
};

}  // namespace taskhost
