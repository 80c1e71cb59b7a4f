// The C-ABI shim: one task kind of one loaded plugin generation, seen from C++.
//
// Wraps the plugin's th_kind_descriptor function pointers. Turns "NULL = default" into the defaults of
// protocol.md §2 (deliver unsupported, reconcile no-op success, can_reattach false) and copies the
// plugin's error text out of a host-owned buffer, so nothing plugin-owned outlives a call.
//
// Thread rule: the object is immutable after construction; every method is safe to call concurrently for
// different tasks. Calls for one task must be serialized by the caller (the router's per-task strand).
// Ownership: `executor_` belongs to the plugin and is destroyed by ~KindExecutor via on_destroy_executor;
// the owning Generation guarantees the code stays mapped until then.
#pragma once

#include <taskhost/plugin.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace taskhost::plugin {

struct CallResult {
  th_status status = TH_OK;
  std::string error;  // the plugin's detail text; empty when it gave none
  bool ok() const { return status == TH_OK; }
};

// What the host knows about one attempt of a task, in the form the C ABI wants. Views: the caller keeps
// the storage alive for the call.
struct TaskCall {
  th_task_ref ref = 0;
  std::string_view task_id;   // must be NUL-terminated storage (std::string::c_str())
  std::string_view kind;      // must be NUL-terminated storage
  uint32_t attempt = 1;
  std::span<const uint8_t> input;
  bool reattach = false;
  std::span<const uint8_t> checkpoint;
};

struct MessageCall {
  std::string_view message_id;   // NUL-terminated storage
  std::string_view text;         // NUL-terminated storage
  std::span<const uint8_t> data;
  std::string_view in_reply_to;  // NUL-terminated storage
};

class KindExecutor {
 public:
  // Takes ownership of `executor` (created by descriptor.on_create_executor). Fields the plugin's
  // descriptor does not have (its struct_size is smaller: an older ABI minor) are treated as absent.
  KindExecutor(const th_kind_descriptor& descriptor, th_executor* executor);
  ~KindExecutor();
  KindExecutor(const KindExecutor&) = delete;
  KindExecutor& operator=(const KindExecutor&) = delete;

  const std::string& kind() const { return kind_; }
  th_encoding encoding() const { return encoding_; }
  const std::string& description() const { return description_; }
  const std::string& input_schema() const { return input_schema_; }
  const std::string& output_schema() const { return output_schema_; }
  bool supports_deliver() const { return desc_.on_deliver != nullptr; }
  bool supports_reattach() const { return desc_.on_can_reattach != nullptr; }

  CallResult start(const TaskCall& task) const;
  CallResult cancel(const TaskCall& task) const;
  CallResult deliver(const TaskCall& task, const MessageCall& message) const;  // UNSUPPORTED if absent
  CallResult reconcile(const TaskCall& task) const;                             // OK if absent
  bool can_reattach(const TaskCall& task) const;                                // false if absent
  CallResult detach(const TaskCall& task) const;                                // UNSUPPORTED if absent
  void release(const TaskCall& task) const;

 private:
  th_task_info to_info(const TaskCall& task) const;

  th_kind_descriptor desc_;  // copy, zero-filled past the plugin's struct_size
  th_executor* executor_;
  std::string kind_;
  th_encoding encoding_;
  std::string description_, input_schema_, output_schema_;
};

}  // namespace taskhost::plugin
