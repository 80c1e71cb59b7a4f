// taskhost::Task and taskhost::Message — what the host says about one attempt of a task and about one
// inbound message, copied out of the host's call-scoped structs so they may be kept as long as needed.
//
// Ownership: plain values that own copies of everything (strings and bytes); copy them freely, e.g. into
// a worker thread. Thread rule: immutable after construction, so safe to read from any thread.
#pragma once

#include <taskhost/plugin.h>

#include <cstdint>
#include <string>
#include <taskhost/sdk/task_sink.hpp>

namespace taskhost {

namespace internal {
inline std::string copy_text(const char* s) { return s ? std::string(s) : std::string(); }
inline std::string copy_bytes(th_bytes b) {
  return (b.data && b.size) ? std::string(reinterpret_cast<const char*>(b.data), b.size) : std::string();
}
}  // namespace internal

class Task {
 public:
  // Copies `info` (host-owned, valid only for the call). `host` is the executor's host table. The SDK
  // builds Tasks for you; the test kit and plugin code rarely call this.
  Task(const th_host_api* host, const th_task_info& info)
      : id_(internal::copy_text(info.task_id)),
        kind_(internal::copy_text(info.kind)),
        attempt_(info.attempt),
        input_(internal::copy_bytes(info.input)),
        sink_(host, info.task) {
    // Fields the host's struct does not carry (an older host) read as absent.
    if (TH_HAS_FIELD(&info, th_task_info, reattach)) reattach_ = info.reattach != 0;
    if (TH_HAS_FIELD(&info, th_task_info, checkpoint)) checkpoint_ = internal::copy_bytes(info.checkpoint);
  }

  // The task's id: the same on every retry and re-attach of the task.
  const std::string& id() const { return id_; }
  const std::string& kind() const { return kind_; }
  // Starts at 1 and only grows: use it for idempotency. Re-attach bumps it.
  uint32_t attempt() const { return attempt_; }
  // The assignment's input, in the kind's encoding (JSON text by default).
  const std::string& input() const { return input_; }
  // True in start() when the task resumes after worker loss or a reload; checkpoint() then holds the last
  // bytes the task stored through TaskSink::checkpoint (may be empty).
  bool reattach() const { return reattach_; }
  const std::string& checkpoint() const { return checkpoint_; }
  // The sink of THIS attempt; a copy stays valid after the call that handed out the Task.
  const TaskSink& sink() const { return sink_; }
  // The host's token for this attempt: unique per attempt, a good key for per-task state.
  th_task_ref ref() const { return sink_.ref(); }

 private:
  std::string id_;
  std::string kind_;
  uint32_t attempt_ = 0;
  std::string input_;
  bool reattach_ = false;
  std::string checkpoint_;
  TaskSink sink_;
};

// A steering message, or the answer to an input request when in_reply_to is set.
struct Message {
  std::string id;
  std::string text;         // may be empty
  std::string data;         // may be empty (kind's encoding)
  std::string in_reply_to;  // the request id given to TaskSink::request_input, or empty

  bool is_reply() const { return !in_reply_to.empty(); }

  // Copies `message` (host-owned, valid only for the call).
  static Message from(const th_message& message) {
    return Message{internal::copy_text(message.message_id), internal::copy_text(message.text),
                   internal::copy_bytes(message.data), internal::copy_text(message.in_reply_to)};
  }
};

}  // namespace taskhost
