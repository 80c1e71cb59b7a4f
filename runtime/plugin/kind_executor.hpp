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

#include "plugin/call_counters.hpp"

#include <taskhost/plugin.h>

#include <atomic>
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

// One attempt of a task in exactly the C ABI's shape, so the shim passes it through by pointer with no
// conversion: build it once per attempt (the router does), not per call. Strings must be NUL-terminated
// and, like the spans, outlive the call (point them at std::string storage).
struct TaskCall : th_task_info {
  TaskCall() : th_task_info{} {
    struct_size = sizeof(th_task_info);
    task_id = "";
    kind = "";
    attempt = 1;
  }
};

// How many times the host called into this executor, per entry point (exact; for metrics). A call the
// shim answers itself because the plugin lacks the entry point (deliver, reconcile, detach...) is not
// counted: nothing crossed into the plugin.
struct CallCounts {
  uint64_t start = 0, deliver = 0, cancel = 0, reconcile = 0, can_reattach = 0, detach = 0, release = 0;
  uint64_t total() const { return start + deliver + cancel + reconcile + can_reattach + detach + release; }
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
  // `descriptor` (the loader's checked, host-owned copy) is copied, its strings too: it need not outlive
  // the constructor.
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
  bool supports_reconcile() const { return desc_.on_reconcile != nullptr; }
  bool supports_release() const { return desc_.on_release != nullptr; }
  CallCounts calls() const;  // safe from any thread; each field is exact, the set is not one instant

  // The per-call methods are inline (below): they run on every plugin call, and the shim's whole job is
  // to cost next to nothing over a direct call.
  CallResult start(const TaskCall& task) const;
  CallResult cancel(const TaskCall& task) const;
  CallResult deliver(const TaskCall& task, const MessageCall& message) const;  // UNSUPPORTED if absent
  CallResult reconcile(const TaskCall& task) const;                             // OK if absent
  bool can_reattach(const TaskCall& task) const;                                // false if absent
  CallResult detach(const TaskCall& task) const;                                // UNSUPPORTED if absent
  void release(const TaskCall& task) const;

 private:
  template <typename Fn>
  static CallResult call_with_error(Fn&& fn);
  static void copy_error(CallResult& result, char* text);  // cold path, out of line
  void count(CallOp op) const { counts_.add(op); }

  th_kind_descriptor desc_;  // copy, zero-filled past the plugin's struct_size
  th_executor* executor_;
  std::string kind_;
  th_encoding encoding_;
  std::string description_, input_schema_, output_schema_;
  mutable CallCounters counts_;
};

// ---- inline hot path ------------------------------------------------------------------------------

// Runs one plugin call with a host-owned error buffer. The buffer is not zero-filled: only its first byte
// is set, and the text is copied out only when the plugin wrote some.
template <typename Fn>
inline CallResult KindExecutor::call_with_error(Fn&& fn) {
  constexpr size_t kErrorCapacity = 512;
  char text[kErrorCapacity];
  text[0] = '\0';
  th_error_buf err{sizeof(th_error_buf), text, kErrorCapacity};
  CallResult result;
  result.status = fn(&err);
  if (text[0] != '\0') [[unlikely]] {
    text[kErrorCapacity - 1] = '\0';  // a plugin that ignored capacity still cannot make us read past it
    copy_error(result, text);
  }
  return result;
}

inline CallResult KindExecutor::start(const TaskCall& task) const {
  count(CallOp::start);
  return call_with_error([&](th_error_buf* err) { return desc_.on_start(executor_, &task, err); });
}

inline CallResult KindExecutor::cancel(const TaskCall& task) const {
  count(CallOp::cancel);
  return call_with_error([&](th_error_buf* err) { return desc_.on_cancel(executor_, &task, err); });
}

inline CallResult KindExecutor::reconcile(const TaskCall& task) const {
  if (!desc_.on_reconcile) return {};
  count(CallOp::reconcile);
  return call_with_error([&](th_error_buf* err) { return desc_.on_reconcile(executor_, &task, err); });
}


}  // namespace taskhost::plugin
