// What the test kit records about a task: every sink call (with the answer the fake host gave), every
// state change the host itself makes, and snapshots of a task's attempt.
//
// Ownership: plain values, copied out of the fake host under its lock; keep them as long as you like.
#pragma once

#include <taskhost/plugin.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace taskhost::testkit {

enum class EventType { state, progress, output, post, input_request, artifact, checkpoint, heartbeat, complete, log };

inline const char* to_string(EventType t) {
  switch (t) {
    case EventType::state:
      return "state";
    case EventType::progress:
      return "progress";
    case EventType::output:
      return "output";
    case EventType::post:
      return "post";
    case EventType::input_request:
      return "input_request";
    case EventType::artifact:
      return "artifact";
    case EventType::checkpoint:
      return "checkpoint";
    case EventType::heartbeat:
      return "heartbeat";
    case EventType::complete:
      return "complete";
    case EventType::log:
      return "log";
  }
  return "?";
}

// One sink call, or one host-made change (by_host). Fields not used by a type stay empty.
struct Event {
  EventType type = EventType::state;
  bool by_host = false;                    // the host changed state itself (start, answer, deadline...)
  th_status answer = TH_OK;                // what the fake host answered the plugin's call
  th_task_state state = TH_STATE_PENDING;  // state, complete
  std::string text;                        // state detail, post text, prompt, heartbeat/log/error message
  std::string data;                        // output delta, post data, checkpoint bytes, completion output
  std::string stream, unit, label, request_id, schema, name, media_type, uri;
  double current = 0, total = 0, fraction = -1;
  th_error_code error_code = 0;
  int32_t level = 0;

  bool accepted() const { return answer == TH_OK; }
};

// How a task ended.
struct TaskResult {
  th_task_state state = TH_STATE_PENDING;  // TH_STATE_SUCCEEDED, _FAILED or _CANCELED
  std::string output;                      // succeeded: the output bytes
  th_error_code error_code = 0;            // failed: TH_ERROR_* (the host's default when the plugin gave 0)
  std::string message;                     // failed/canceled: the reason
};

// One attempt of one task, as the fake host sees it.
struct TaskView {
  std::string id;
  std::string kind;
  uint32_t attempt = 0;
  th_task_ref ref = 0;
  th_task_state state = TH_STATE_PENDING;
  std::string pending_request;  // request id the task waits for, while waiting_input
  std::string checkpoint;       // the last checkpoint of this attempt
  std::optional<TaskResult> result;
  std::vector<Event> events;
  bool released = false;    // on_release called: every write is refused TH_TASK_ENDED
  bool superseded = false;  // a newer attempt exists: every write is refused TH_STALE_ATTEMPT

  bool terminal() const { return result.has_value(); }
  // The accepted events of one type, in order.
  std::vector<Event> of(EventType type) const {
    std::vector<Event> out;
    for (const Event& e : events) {
      if (e.type == type && e.accepted()) out.push_back(e);
    }
    return out;
  }
  // Calls the fake host refused (answer != TH_OK), in order.
  std::vector<Event> rejected() const {
    std::vector<Event> out;
    for (const Event& e : events) {
      if (!e.accepted()) out.push_back(e);
    }
    return out;
  }
};

inline bool is_terminal(th_task_state s) {
  return s == TH_STATE_SUCCEEDED || s == TH_STATE_FAILED || s == TH_STATE_CANCELED;
}

inline const char* state_name(th_task_state s) {
  switch (s) {
    case TH_STATE_PENDING:
      return "pending";
    case TH_STATE_RUNNING:
      return "running";
    case TH_STATE_WAITING_INPUT:
      return "waiting_input";
    case TH_STATE_SUCCEEDED:
      return "succeeded";
    case TH_STATE_FAILED:
      return "failed";
    case TH_STATE_CANCELED:
      return "canceled";
    default:
      return "unknown";
  }
}

}  // namespace taskhost::testkit
