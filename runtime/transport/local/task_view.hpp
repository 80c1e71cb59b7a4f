// How a client sees a task (v1::TaskStatus), folded from what the router published. Pure functions,
// shared by the live view and by recovery from the store.
#pragma once

#include "transport/local/store.hpp"

#include "taskhost/v1/status.pb.h"

namespace taskhost::transport::local {

// A fresh, pending task.
v1::TaskStatus status_for_new_task(const v1::TaskAssignment& assignment, int64_t now_ms);

// Applies one event. Ignored when the task already has a completion (terminal is final) or the event
// comes from an older attempt than the status has seen. Output deltas change nothing.
void apply_event(v1::TaskStatus& status, const v1::TaskEvent& event);

// Applies the completion; false (and nothing changes) if the status already has one: the first wins.
bool apply_completion(v1::TaskStatus& status, const v1::TaskCompletion& completion);

// The status as the store last recorded it.
v1::TaskStatus status_from_stored(const StoredTask& task);

bool is_terminal(v1::TaskState state);

}  // namespace taskhost::transport::local
