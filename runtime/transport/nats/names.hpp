// Every stream, subject, consumer and key name the transport uses, derived from the prefix and bucket in
// one place so hosts, clients and tests agree on them.
//
//   <P>_TASKS    work queue    <P>.tasks.<kind>                 TaskAssignment; one durable pull consumer
//                                                                "kind_<kind token>" per kind
//   <P>_EVENTS   limits        <P>.events.<task>.event          a batch of the task's WatchItems
//                              <P>.events.<task>.completion     the last batch: its events + the completion
//                                                                (published only if the subject is empty:
//                                                                the first completion wins)
//   <P>_CONTROL  limits        <P>.control.<task>               SteeringMessage or CancelRequest
//   (core only)                <P>.heartbeat.<task>             Heartbeat, not stored
//   (core only)                <P>.discover                     request: every host answers with its worker id
//                                                                and loaded kinds (discovery.hpp)
//   KV <bucket>                task.<task>                      TaskRecord: owner, attempt, checkpoint
//                              host.<worker>                    host liveness
//
// <task> and <worker> are tokens: [A-Za-z0-9_-] kept, every other byte written as "=XX" (hex), so any id
// is one subject token and a valid KV key. A kind keeps its dots in its subject when each dot-separated
// part is a plain token ("hello.greet" → <P>.tasks.hello.greet); other kinds are encoded as one token.
//
// Thread rule: immutable after construction.
#pragma once

#include <string>
#include <string_view>

namespace taskhost::transport::nats {

// One subject token / KV key part for any string (see above). Reversible by decode_token.
std::string encode_token(std::string_view id);
std::string decode_token(std::string_view token);

class Names {
 public:
  // An empty `bucket` is the prefix's own ("<prefix in lower case>_tasks"): two deployments on one
  // server must not share host keys and task records, or one rescues the other's tasks.
  Names(std::string prefix, std::string bucket);

  const std::string& prefix() const { return prefix_; }
  const std::string& bucket() const { return bucket_; }

  std::string tasks_stream() const { return prefix_ + "_TASKS"; }
  std::string events_stream() const { return prefix_ + "_EVENTS"; }
  std::string control_stream() const { return prefix_ + "_CONTROL"; }

  std::string tasks_wildcard() const { return prefix_ + ".tasks.>"; }
  std::string events_wildcard() const { return prefix_ + ".events.>"; }
  std::string control_wildcard() const { return prefix_ + ".control.>"; }

  std::string task_subject(std::string_view kind) const;
  std::string consumer_name(std::string_view kind) const;
  std::string events_subject(std::string_view task_id) const;
  std::string completion_subject(std::string_view task_id) const;
  std::string task_events_filter(std::string_view task_id) const;  // both subjects of one task
  std::string control_subject(std::string_view task_id) const;
  std::string heartbeat_subject(std::string_view task_id) const;
  std::string discover_subject() const { return prefix_ + ".discover"; }

  static std::string task_key(std::string_view task_id);
  static std::string host_key(std::string_view worker_id);
  static constexpr std::string_view task_key_prefix = "task.";
  static constexpr std::string_view host_key_prefix = "host.";

  // The pull API subject for a consumer of the tasks stream.
  std::string pull_subject(std::string_view consumer) const;
  // The KV stream and the subject that stores `key` (for CAS writes published directly).
  std::string kv_stream() const { return "KV_" + bucket_; }
  std::string kv_subject(std::string_view key) const;

 private:
  std::string prefix_;
  std::string bucket_;
};

}  // namespace taskhost::transport::nats
