#include "plugin/kind_executor.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace taskhost::plugin {
namespace {

constexpr size_t kErrorCapacity = 512;

// Runs one plugin call with a fresh host-owned error buffer and copies the text out.
template <typename Fn>
CallResult call_with_error(Fn&& fn) {
  std::array<char, kErrorCapacity> text{};
  th_error_buf err{sizeof(th_error_buf), text.data(), text.size()};
  CallResult result;
  result.status = fn(&err);
  text.back() = '\0';  // a plugin that ignored capacity still cannot make us read past the buffer
  result.error = text.data();
  return result;
}

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
}

KindExecutor::~KindExecutor() {
  if (executor_ && desc_.on_destroy_executor) desc_.on_destroy_executor(executor_);
}

th_task_info KindExecutor::to_info(const TaskCall& task) const {
  th_task_info info{};
  info.struct_size = sizeof(info);
  info.task = task.ref;
  info.task_id = task.task_id.data();
  info.kind = task.kind.data();
  info.attempt = task.attempt;
  info.input = to_bytes(task.input);
  info.reattach = task.reattach ? 1 : 0;
  info.checkpoint = to_bytes(task.checkpoint);
  return info;
}

CallResult KindExecutor::start(const TaskCall& task) const {
  const th_task_info info = to_info(task);
  return call_with_error([&](th_error_buf* err) { return desc_.on_start(executor_, &info, err); });
}

CallResult KindExecutor::cancel(const TaskCall& task) const {
  const th_task_info info = to_info(task);
  return call_with_error([&](th_error_buf* err) { return desc_.on_cancel(executor_, &info, err); });
}

CallResult KindExecutor::deliver(const TaskCall& task, const MessageCall& message) const {
  if (!desc_.on_deliver) return {TH_UNSUPPORTED, "kind '" + kind_ + "' does not take steering messages"};
  const th_task_info info = to_info(task);
  th_message msg{};
  msg.struct_size = sizeof(msg);
  msg.message_id = message.message_id.data();
  msg.text = message.text.data();
  msg.data = to_bytes(message.data);
  msg.in_reply_to = message.in_reply_to.data();
  return call_with_error([&](th_error_buf* err) { return desc_.on_deliver(executor_, &info, &msg, err); });
}

CallResult KindExecutor::reconcile(const TaskCall& task) const {
  if (!desc_.on_reconcile) return {};
  const th_task_info info = to_info(task);
  return call_with_error([&](th_error_buf* err) { return desc_.on_reconcile(executor_, &info, err); });
}

bool KindExecutor::can_reattach(const TaskCall& task) const {
  if (!desc_.on_can_reattach) return false;
  const th_task_info info = to_info(task);
  return desc_.on_can_reattach(executor_, &info) != 0;
}

CallResult KindExecutor::detach(const TaskCall& task) const {
  if (!desc_.on_detach) return {TH_UNSUPPORTED, "kind '" + kind_ + "' cannot detach tasks"};
  const th_task_info info = to_info(task);
  return call_with_error([&](th_error_buf* err) { return desc_.on_detach(executor_, &info, err); });
}

void KindExecutor::release(const TaskCall& task) const {
  if (!desc_.on_release) return;
  const th_task_info info = to_info(task);
  desc_.on_release(executor_, &info);
}

}  // namespace taskhost::plugin
