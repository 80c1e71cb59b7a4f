// A task's TaskStatus as NATS clients see it, assembled from what the streams and the bucket hold: its
// KV record (queued or held: kind, attempt, owner), its latest events batch (state, progress, a pending
// input request) and its completion batch (the final word). Later sources win over earlier ones.
//
// Thread rule: a pure function over values.
#pragma once

#include "transport/nats/wire.hpp"

#include "taskhost/v1/status.pb.h"

#include <optional>
#include <vector>

namespace taskhost::transport::nats {

// Folds one event of the task into `s` (kind, attempt, worker, times, state, progress, input request).
// The hosts keep each task's standing status this way too (EventBatcher), for the snapshot item that ends
// each of its events batches.
void apply_event(v1::TaskStatus& s, const v1::TaskEvent& e);

// Nullopt when all three are absent (nothing is known of the task).
std::optional<v1::TaskStatus> status_view(const std::string& task_id, const std::optional<TaskRecord>& record,
                                          const std::vector<v1::WatchItem>& events,
                                          const std::vector<v1::WatchItem>& completion_batch);

}  // namespace taskhost::transport::nats
