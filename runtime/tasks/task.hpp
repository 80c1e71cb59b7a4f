// One task as the router tracks it. Internal to runtime/tasks.
//
// Two kinds of serialization, for two reasons:
//   - `strand` orders every PLUGIN CALL of the task (start, deliver, cancel, reconcile, detach, release):
//     they never overlap and keep their order, while different tasks run in parallel.
//   - `mu` guards the task's STATE, which sink calls change from any plugin thread. Holding it while
//     publishing keeps per-task event order and lets a sink call answer synchronously (TASK_ENDED,
//     STALE_ATTEMPT) without a round trip through the strand. It is never held across a plugin call.
#pragma once

#include "registry/kind_registry.hpp"
#include "tasks/call_pool.hpp"

#include "taskhost/v1/assignment.pb.h"
#include "taskhost/v1/events.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <taskhost/plugin.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace taskhost::tasks {

// Tasks of one kind (or of the whole host) that hold or wait for a slot. Guarded by the router's lock.
struct SlotCounts {
  size_t pending = 0;  // accepted, waiting for a slot
  size_t started = 0;  // admitted and not yet retired: holds a slot
  size_t limit = 0;    // a kind's concurrency limit (its own, or the host's)
};

struct Task {
  Task(std::string id_, std::string kind_, CallPool& pool) : id(std::move(id_)), kind(std::move(kind_)), strand(pool) {}

  // Immutable after creation (serial: set once by assign(), before the task is visible to anyone).
  const std::string id;
  const std::string kind;
  uint64_t serial = 0;
  Strand strand;
  std::chrono::seconds heartbeat_interval{0};
  // Its kind's entry in the router's per-kind counts, set at admission under the router's lock (the
  // table never moves an entry): admitting and retiring do not hash the kind again.
  SlotCounts* kind_counts = nullptr;
  bool waiting_for_slot = false;  // under the router's lock: in its pending queue (why it waits: snapshot)

  std::mutex mu;
  // --- guarded by mu ---
  uint32_t attempt = 1;
  v1::TaskState state = v1::PENDING;
  std::string detail;
  bool ended = false;             // a completion was published; nothing else is accepted
  bool started = false;           // admitted and handed to the strand
  bool released = false;          // on_release called (or never needed)
  bool cancel_requested = false;
  // Why the host itself canceled it while draining ("host w2 is shutting down, ..."): the completion
  // names it whatever the plugin's own message says ("canceled after step 26" alone told nobody why).
  std::string shutdown_reason;
  bool reattach = false;          // the next start is a re-attach
  uint32_t process_losses = 0;    // isolated plugin processes that ended while it ran
  bool awaiting_process = false;  // its isolated plugin's process ended; it waits for the next one
  registry::Binding binding;      // generation + executor running this attempt; dropped on the strand
  uint64_t generation_id = 0;     // which generation started the current attempt (kept after release)
  std::string plugin_version;
  // The input, encoded once at assignment in the encoding its kind had then; a start on a generation
  // with the other encoding re-encodes it. `exact_input` keeps the Value only when JSON could not carry
  // it exactly (NaN, infinities, -0), so that re-encoding still hands the plugin the original.
  std::string encoded_input;
  th_encoding input_encoding = TH_ENCODING_JSON;
  std::unique_ptr<google::protobuf::Value> exact_input;
  std::string checkpoint;
  std::vector<v1::SteeringMessage> queued;  // steering that arrived before start (a vector: no allocation until used)
  // Answers to input requests this attempt had not made when they arrived (sent before its start, or
  // replayed to a re-attached attempt that has yet to ask again): each is delivered when the task asks
  // for its request id. Only until the attempt's first request: after that an answer to a request that
  // is not pending is refused at once (a duplicate or a typo, not an early answer).
  std::vector<v1::SteeringMessage> held_answers;
  bool asked_input = false;  // this attempt has made an input request
  std::string pending_request_id;
  // Input requests made so far: an answer clears the request it answered only if no request (the same
  // id asked again, from inside the delivery) came after it.
  uint64_t input_requests = 0;
  std::string pending_prompt;
  std::optional<v1::Progress> progress;
  std::optional<double> beat_fraction;
  std::string beat_message;
  uint64_t seq = 0;
  // Its PENDING event is still owed: set at creation, and emitted by admission right after the task
  // entered the maps, or before any other event of the task that comes first (emit_locked).
  bool pending_event_deferred = false;

  // --- strand only (set and read by the handler running on the task's strand) ---
  bool finalize_after_call = false;  // the task ended inside the current handler's plugin call
};

}  // namespace taskhost::tasks
