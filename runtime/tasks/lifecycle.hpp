// Task lifecycle rules (protocol.md §2), as pure functions so they are tested on their own:
//   pending → running ⇄ waiting_input → succeeded | failed | canceled; terminal states are final.
#pragma once

#include "taskhost/v1/events.pb.h"

#include <taskhost/plugin.h>

#include <optional>
#include <string_view>

namespace taskhost::tasks {

constexpr bool is_terminal(v1::TaskState s) {
  return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELED;
}

// Whether a task in `from` may move to `to`. Staying in the same state is allowed (a new detail).
constexpr bool transition_allowed(v1::TaskState from, v1::TaskState to) {
  if (is_terminal(from)) return false;
  switch (to) {
    case v1::PENDING: return from == v1::PENDING;
    case v1::RUNNING: return from == v1::PENDING || from == v1::RUNNING || from == v1::WAITING_INPUT;
    case v1::WAITING_INPUT: return from == v1::RUNNING || from == v1::WAITING_INPUT;
    case v1::SUCCEEDED:
    case v1::FAILED:
    case v1::CANCELED: return true;
    default: return false;
  }
}

// The ABI's state numbers to the wire's; nullopt for values the ABI does not define.
constexpr std::optional<v1::TaskState> from_abi_state(th_task_state s) {
  switch (s) {
    case TH_STATE_PENDING: return v1::PENDING;
    case TH_STATE_RUNNING: return v1::RUNNING;
    case TH_STATE_WAITING_INPUT: return v1::WAITING_INPUT;
    case TH_STATE_SUCCEEDED: return v1::SUCCEEDED;
    case TH_STATE_FAILED: return v1::FAILED;
    case TH_STATE_CANCELED: return v1::CANCELED;
    default: return std::nullopt;
  }
}

std::string_view state_name(v1::TaskState s);

}  // namespace taskhost::tasks
