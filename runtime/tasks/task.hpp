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

#include "taskhost/v1/assignment.pb.h"
#include "taskhost/v1/events.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <taskhost/plugin.h>

#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

namespace taskhost::tasks {

using Strand = boost::asio::strand<boost::asio::thread_pool::executor_type>;

struct Task {
  Task(std::string id_, std::string kind_, Strand strand_)
      : id(std::move(id_)), kind(std::move(kind_)), strand(std::move(strand_)) {}

  // Immutable after creation (serial: set once by assign(), before the task is visible to anyone).
  const std::string id;
  const std::string kind;
  uint64_t serial = 0;
  Strand strand;
  google::protobuf::Value input;
  std::chrono::seconds heartbeat_interval{0};

  std::mutex mu;
  // --- guarded by mu ---
  uint32_t attempt = 1;
  v1::TaskState state = v1::PENDING;
  std::string detail;
  bool ended = false;             // a completion was published; nothing else is accepted
  bool started = false;           // admitted and handed to the strand
  bool released = false;          // on_release called (or never needed)
  bool cancel_requested = false;
  bool reattach = false;          // the next start is a re-attach
  registry::Binding binding;      // generation + executor running this attempt; dropped on the strand
  uint64_t generation_id = 0;     // which generation started the current attempt (kept after release)
  std::string plugin_version;
  std::string encoded_input;      // input in the executor's encoding (set at start)
  std::string checkpoint;
  std::deque<v1::SteeringMessage> queued;  // steering that arrived before start
  std::string pending_request_id;
  std::string pending_prompt;
  std::optional<v1::Progress> progress;
  std::optional<double> beat_fraction;
  std::string beat_message;
  uint64_t seq = 0;
};

}  // namespace taskhost::tasks
