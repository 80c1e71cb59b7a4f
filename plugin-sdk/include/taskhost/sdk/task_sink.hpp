// taskhost::TaskSink — how a running task reports to the host: state, progress, output, messages, input
// requests, artifacts, checkpoints, heartbeats and its one terminal result.
//
// A TaskSink is a small value (the host's function table plus the task's ref), so keep a copy wherever
// the work runs: it stays usable after the executor call that handed it out returned, and until the
// executor is destroyed. Every method returns a Status instead of throwing; once the task ended (or a
// newer attempt superseded this one) calls answer TH_TASK_ENDED / TH_STALE_ATTEMPT and change nothing.
//
// Ownership: arguments are copied by the host before the call returns; nothing needs to outlive it.
// Thread rule: safe to call from any thread, concurrently, including from inside an executor method.
// The host never calls back into the plugin from inside a sink call, so holding a plugin lock while
// calling is allowed (though rarely needed). Never call a sink after the executor's destructor returned.
#pragma once

#include <taskhost/plugin.h>

#include <string>
#include <string_view>
#include <taskhost/internal/sink_calls.hpp>
#include <taskhost/sdk/status.hpp>
#include <utility>

namespace taskhost {

// The non-terminal states a task may report; terminal states go through succeed/fail/canceled.
enum class RunState : th_task_state {
  running = TH_STATE_RUNNING,
  waiting_input = TH_STATE_WAITING_INPUT,
};

// Levels for TaskSink::log.
enum class LogLevel : int32_t { debug = TH_LOG_DEBUG, info = TH_LOG_INFO, warn = TH_LOG_WARN, error = TH_LOG_ERROR };

class TaskSink {
 public:
  // An unbound sink: every call answers TH_FAILED. Useful as a member before a task starts.
  TaskSink() = default;
  // `host` is the host's table (host-owned, valid until the executor is destroyed); `task` the ref of
  // one attempt of one task. The SDK builds sinks for you; plugin code rarely calls this.
  TaskSink(const th_host_api* host, th_task_ref task) noexcept : host_(host), task_(task) {}

  th_task_ref ref() const noexcept { return task_; }
  bool bound() const noexcept { return host_ != nullptr; }

  // Non-terminal state with a short human-readable detail.
  Status state(RunState state, std::string_view detail = {}) const noexcept {
    return call([&](internal::CStrings& s) {
      return host_->set_state(host_->context, task_, static_cast<th_task_state>(state), s.text(detail));
    });
  }
  // Progress {current, total, unit, label}; total <= 0 means unknown.
  Status progress(double current, double total, std::string_view unit = {},
                  std::string_view label = {}) const noexcept {
    return call([&](internal::CStrings& s) {
      return host_->progress(host_->context, task_, current, total, s.optional(unit), s.optional(label));
    });
  }
  // An ephemeral delta on a named stream ("stdout", "log", ...). Not durable.
  Status output(std::string_view stream, std::string_view bytes) const noexcept {
    return call([&](internal::CStrings& s) {
      return host_->output(host_->context, task_, s.text(stream), internal::to_bytes(bytes));
    });
  }
  // An outbound message: text and/or data in the kind's encoding.
  Status post(std::string_view text, std::string_view data = {}) const noexcept {
    return call([&](internal::CStrings& s) {
      return host_->post(host_->context, task_, s.text(text), internal::to_bytes(data));
    });
  }
  // Ask for input: the task becomes waiting_input until a message with in_reply_to == id arrives through
  // TaskExecutor::deliver; when deliver accepts it, the host moves the task back to running. `schema` is
  // JSON Schema; may be empty.
  Status request_input(std::string_view id, std::string_view prompt, std::string_view schema = {}) const noexcept {
    return call([&](internal::CStrings& s) {
      return host_->request_input(host_->context, task_, s.text(id), s.text(prompt), s.optional(schema));
    });
  }
  // Record an artifact {name, media type, path or URL}.
  Status append_artifact(std::string_view name, std::string_view media_type, std::string_view uri) const noexcept {
    return call([&](internal::CStrings& s) {
      return host_->append_artifact(host_->context, task_, s.text(name), s.text(media_type), s.text(uri));
    });
  }
  // Replace the task's checkpoint: opaque bytes handed back in Task::checkpoint() on re-attach.
  Status checkpoint(std::string_view bytes) const noexcept {
    return call(
        [&](internal::CStrings&) { return host_->checkpoint(host_->context, task_, internal::to_bytes(bytes)); });
  }
  // Adds a progress fraction (0..1; negative = none) and a status message to the next heartbeat.
  Status heartbeat(double fraction = -1.0, std::string_view message = {}) const noexcept {
    return call(
        [&](internal::CStrings& s) { return host_->heartbeat(host_->context, task_, fraction, s.optional(message)); });
  }
  // Terminal: succeeded with `output` (kind's encoding; may be empty). The first terminal call wins.
  Status succeed(std::string_view output = {}) const noexcept { return finish(TH_STATE_SUCCEEDED, output, 0, {}); }
  // Terminal: failed with a wire error code (TH_ERROR_*) and a reason.
  Status fail(th_error_code code, std::string_view message) const noexcept {
    return finish(TH_STATE_FAILED, {}, code, message);
  }
  // Terminal: canceled (normally after TaskExecutor::cancel), with an optional reason.
  Status canceled(std::string_view message = {}) const noexcept { return finish(TH_STATE_CANCELED, {}, 0, message); }
  // Writes to the host's log, tagged with the plugin and this task.
  Status log(LogLevel level, std::string_view message) const noexcept {
    return call([&](internal::CStrings& s) {
      host_->log(host_->context, task_, static_cast<int32_t>(level), s.text(message));
      return TH_OK;
    });
  }

 private:
  Status finish(th_task_state state, std::string_view output, th_error_code code,
                std::string_view message) const noexcept {
    return call([&](internal::CStrings& s) {
      th_result result{};
      result.struct_size = sizeof(result);
      result.state = state;
      result.output = internal::to_bytes(output);
      result.error_code = code;
      result.error_message = s.optional(message);
      return host_->complete(host_->context, task_, &result);
    });
  }

  template <typename Fn>
  Status call(Fn&& fn) const noexcept {
    return internal::call_host(host_, std::forward<Fn>(fn));
  }

  const th_host_api* host_ = nullptr;
  th_task_ref task_ = 0;
};

}  // namespace taskhost
