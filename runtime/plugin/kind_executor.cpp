#include "plugin/kind_executor.hpp"

#include "common/utf8.hpp"

#include <algorithm>
#include <cstring>

namespace taskhost::plugin {
namespace {

th_bytes to_bytes(std::span<const uint8_t> s) { return th_bytes{s.data(), s.size()}; }

std::string copy_string(const char* s) { return s ? std::string(s) : std::string(); }

}  // namespace

KindExecutor::KindExecutor(const th_kind_descriptor& descriptor, th_executor* executor)
    : desc_{}, executor_(executor) {
  // Copy only what the plugin's struct really has; anything appended after its ABI minor stays zero.
  std::memcpy(&desc_, &descriptor, std::min<size_t>(descriptor.struct_size, sizeof(desc_)));
  desc_.struct_size = static_cast<uint32_t>(std::min<size_t>(descriptor.struct_size, sizeof(desc_)));
  kind_ = copy_string(desc_.kind);
  encoding_ = desc_.encoding;
  if (TH_HAS_FIELD(&desc_, th_kind_descriptor, output_schema_json)) {
    description_ = copy_string(desc_.description);
    input_schema_ = copy_string(desc_.input_schema_json);
    output_schema_ = copy_string(desc_.output_schema_json);
  }
  // Read from the copies above only: the descriptor's strings need not outlive this constructor (the
  // loader's are its own copy of the plugin's, gone once the load returns).
  desc_.kind = kind_.c_str();
  desc_.description = desc_.input_schema_json = desc_.output_schema_json = nullptr;
}

KindExecutor::~KindExecutor() {
  if (executor_ && desc_.on_destroy_executor) desc_.on_destroy_executor(executor_);
}

// The plugin's last error becomes event and log text: bytes that are not UTF-8 become U+FFFD.
void KindExecutor::copy_error(CallResult& result, char* text) {
  result.error = valid_utf8(text) ? std::string(text) : utf8_sanitized(text);
}

CallCounts KindExecutor::calls() const {
  CallCounts c;
  c.start = counts_.read(CallOp::start);
  c.deliver = counts_.read(CallOp::deliver);
  c.cancel = counts_.read(CallOp::cancel);
  c.reconcile = counts_.read(CallOp::reconcile);
  c.can_reattach = counts_.read(CallOp::can_reattach);
  c.detach = counts_.read(CallOp::detach);
  c.release = counts_.read(CallOp::release);
  return c;
}

CallResult KindExecutor::deliver(const TaskCall& task, const MessageCall& message) const {
  if (!desc_.on_deliver) return {TH_UNSUPPORTED, "kind '" + kind_ + "' does not take steering messages"};
  th_message msg{};
  msg.struct_size = sizeof(msg);
  msg.message_id = message.message_id.data();
  msg.text = message.text.data();
  msg.data = to_bytes(message.data);
  msg.in_reply_to = message.in_reply_to.data();
  count(CallOp::deliver);
  return call_with_error([&](th_error_buf* err) { return desc_.on_deliver(executor_, &task, &msg, err); });
}

bool KindExecutor::can_reattach(const TaskCall& task) const {
  if (!desc_.on_can_reattach) return false;
  count(CallOp::can_reattach);
  return desc_.on_can_reattach(executor_, &task) != 0;
}

CallResult KindExecutor::detach(const TaskCall& task) const {
  if (!desc_.on_detach) return {TH_UNSUPPORTED, "kind '" + kind_ + "' cannot detach tasks"};
  count(CallOp::detach);
  return call_with_error([&](th_error_buf* err) { return desc_.on_detach(executor_, &task, err); });
}

void KindExecutor::release(const TaskCall& task) const {
  if (!desc_.on_release) return;
  count(CallOp::release);
  desc_.on_release(executor_, &task);
}

}  // namespace taskhost::plugin
