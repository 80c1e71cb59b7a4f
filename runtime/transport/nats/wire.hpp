// The transport's own payloads and header parsing:
//   - a batch of WatchItems (what every message on the events stream carries): protobuf messages, each
//     preceded by its varint length (the standard "delimited" form), in per-task order;
//   - TaskRecord, the KV value of task.<task>: who holds the task, its attempt, the assignment (so
//     another host can re-attach it) and its last checkpoint. Encoded in protobuf wire format with the
//     field numbers listed in wire.cpp, so any protobuf decoder can read it;
//   - the JetStream delivery metadata carried in an ack reply subject.
//
// Thread rule: free functions over values; safe from any thread.
#pragma once

#include "transport/nats/control_mark.hpp"
#include "taskhost/v1/completion.pb.h"
#include "taskhost/v1/events.pb.h"
#include "taskhost/v1/status.pb.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::transport::nats {

// On an assignment a client stored: the revision of the queued record it wrote, so the host taking the
// task can replace that record by compare-and-set without reading it first.
inline constexpr const char* kRecordRevisionHeader = "Taskhost-Record-Revision";
// On an assignment a rescuer handed back to its kind's queue (it serves no plugin of the kind): the
// worker id of the dead host whose record the taker re-attaches it from.
inline constexpr const char* kRescuedHeader = "Taskhost-Rescued-From";

std::string encode_items(const std::vector<v1::WatchItem>& items);
// Appends one item to a batch being built, without building a WatchItem first (same bytes).
void append_event_item(std::string& batch, const v1::TaskEvent& event);
void append_completion_item(std::string& batch, const v1::TaskCompletion& completion);
void append_status_item(std::string& batch, const v1::TaskStatus& status);
// Nullopt when the bytes are not a well-formed batch.
std::optional<std::vector<v1::WatchItem>> decode_items(std::string_view bytes);

struct TaskRecord {
  std::string task_id;
  std::string kind;
  std::string owner;          // worker id holding the task; empty while queued (written by a client)
  uint32_t attempt = 0;
  v1::TaskState state = v1::PENDING;
  std::string assignment;     // serialized TaskAssignment as queued (execute.attempt is the task's first
                              // attempt, `attempt` the latest); may be empty in a client's queued record
  std::string checkpoint;     // the last checkpoint of `attempt`
  bool ack_on_completion = false;  // the owner's ack mode: JetStream redelivers it if the owner dies
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  // The control messages (steering, cancels) the plugin had taken when `checkpoint` was taken: an attempt
  // resuming from it skips those, or they would be applied twice.
  ControlMark control;
  // Set when a dead host's rescuer that serves no plugin of the kind handed the task back to its queue:
  // the dead host's worker id. The record then has no owner, and keeps the attempt, checkpoint and mark
  // the host that takes the message resumes from.
  std::string rescued_from;
};

std::string encode_record(const TaskRecord& record);
std::optional<TaskRecord> decode_record(std::string_view bytes);

// From "$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>" (and the longer form with
// domain and account hash). Nullopt when `reply` is not an ack subject.
struct DeliveryInfo {
  uint64_t delivered = 1;   // 1 on the first delivery
  uint64_t stream_seq = 0;
  int64_t stored_unix_ns = 0;  // when the stream stored the message (server clock)
};
std::optional<DeliveryInfo> parse_ack_reply(std::string_view reply);

}  // namespace taskhost::transport::nats
