#include "transport/local/task_view.hpp"

#include <algorithm>

namespace taskhost::transport::local {

bool is_terminal(v1::TaskState s) { return s == v1::SUCCEEDED || s == v1::FAILED || s == v1::CANCELED; }

v1::TaskStatus status_for_new_task(const v1::TaskAssignment& a, int64_t now_ms) {
  v1::TaskStatus s;
  s.set_task_id(a.task_id());
  if (a.has_execute()) s.set_kind(a.execute().component_id());
  s.set_attempt(a.has_execute() ? std::max<uint32_t>(1, a.execute().attempt()) : 1);
  s.set_state(v1::PENDING);
  s.set_created_unix_ms(now_ms);
  s.set_updated_unix_ms(now_ms);
  return s;
}

void apply_event(v1::TaskStatus& s, const v1::TaskEvent& e) {
  if (s.has_completion() || e.attempt() < s.attempt()) return;
  if (e.has_output()) return;
  s.set_attempt(e.attempt());
  if (!e.kind().empty()) s.set_kind(e.kind());
  if (!e.worker_id().empty()) s.set_worker_id(e.worker_id());
  if (e.unix_ms() > 0) s.set_updated_unix_ms(e.unix_ms());
  if (e.has_state()) {
    s.set_state(e.state().state());
    s.set_detail(e.state().detail());
    if (e.state().state() != v1::WAITING_INPUT) {
      s.clear_pending_request_id();
      s.clear_pending_prompt();
    }
  } else if (e.has_progress()) {
    *s.mutable_progress() = e.progress();
  } else if (e.has_input_request()) {
    s.set_pending_request_id(e.input_request().request_id());
    s.set_pending_prompt(e.input_request().prompt());
  }
}

bool apply_completion(v1::TaskStatus& s, const v1::TaskCompletion& c) {
  if (s.has_completion()) return false;
  *s.mutable_completion() = c;
  s.set_state(c.state());
  s.set_attempt(std::max(s.attempt(), c.attempt()));
  if (c.has_error()) s.set_detail(c.error().message());
  if (c.unix_ms() > s.updated_unix_ms()) s.set_updated_unix_ms(c.unix_ms());
  if (c.generation() != 0) s.set_generation(c.generation());
  if (!c.plugin_version().empty()) s.set_plugin_version(c.plugin_version());
  if (!c.worker_id().empty()) s.set_worker_id(c.worker_id());
  if (!c.kind().empty()) s.set_kind(c.kind());
  s.clear_pending_request_id();
  s.clear_pending_prompt();
  return true;
}

v1::TaskStatus status_from_stored(const StoredTask& t) {
  v1::TaskStatus s;
  s.set_task_id(t.task_id);
  s.set_kind(t.kind);
  s.set_attempt(t.attempt);
  s.set_state(t.state);
  s.set_detail(t.detail);
  if (t.progress) *s.mutable_progress() = *t.progress;
  s.set_pending_request_id(t.pending_request_id);
  s.set_pending_prompt(t.pending_prompt);
  s.set_worker_id(t.worker_id);
  s.set_created_unix_ms(t.created_ms);
  s.set_updated_unix_ms(t.updated_ms);
  if (t.completion) apply_completion(s, *t.completion);
  return s;
}

}  // namespace taskhost::transport::local
