#include "transport/nats/status_view.hpp"

namespace taskhost::transport::nats {
namespace {

// A host's snapshot (the last item of an events batch): what the events so far say, including those of
// earlier batches this one does not repeat.
void apply_snapshot(v1::TaskStatus& s, const v1::TaskStatus& snap) {
  if (!snap.kind().empty()) s.set_kind(snap.kind());
  if (snap.attempt() != 0) s.set_attempt(snap.attempt());
  if (!snap.worker_id().empty()) s.set_worker_id(snap.worker_id());
  if (snap.updated_unix_ms() != 0) s.set_updated_unix_ms(snap.updated_unix_ms());
  if (s.created_unix_ms() == 0) s.set_created_unix_ms(snap.created_unix_ms());
  if (snap.state() != v1::TASK_STATE_UNSPECIFIED) {
    s.set_state(snap.state());
    s.set_detail(snap.detail());
  }
  if (snap.has_progress()) *s.mutable_progress() = snap.progress();
  s.set_pending_request_id(snap.pending_request_id());
  s.set_pending_prompt(snap.pending_prompt());
}

}  // namespace

void apply_event(v1::TaskStatus& s, const v1::TaskEvent& e) {
  if (!e.kind().empty()) s.set_kind(e.kind());
  if (e.attempt() != 0) s.set_attempt(e.attempt());
  if (!e.worker_id().empty()) s.set_worker_id(e.worker_id());
  if (e.unix_ms() != 0) s.set_updated_unix_ms(e.unix_ms());
  if (s.created_unix_ms() == 0) s.set_created_unix_ms(e.unix_ms());
  switch (e.event_case()) {
    case v1::TaskEvent::kState:
      s.set_state(e.state().state());
      s.set_detail(e.state().detail());
      if (e.state().state() != v1::WAITING_INPUT) {
        s.clear_pending_request_id();
        s.clear_pending_prompt();
      }
      break;
    case v1::TaskEvent::kProgress:
      *s.mutable_progress() = e.progress();
      break;
    case v1::TaskEvent::kInputRequest:
      s.set_pending_request_id(e.input_request().request_id());
      s.set_pending_prompt(e.input_request().prompt());
      break;
    default:
      break;
  }
}

std::optional<v1::TaskStatus> status_view(const std::string& task_id, const std::optional<TaskRecord>& record,
                                          const std::vector<v1::WatchItem>& events,
                                          const std::vector<v1::WatchItem>& completion_batch) {
  if (!record && events.empty() && completion_batch.empty()) return std::nullopt;
  v1::TaskStatus s;
  s.set_task_id(task_id);
  if (record) {
    s.set_kind(record->kind);
    s.set_attempt(record->attempt);
    s.set_state(record->owner.empty() ? v1::PENDING : v1::RUNNING);
    s.set_detail(record->owner.empty() ? "queued" : "held by " + record->owner);
    s.set_worker_id(record->owner);
    s.set_created_unix_ms(record->created_unix_ms);
    s.set_updated_unix_ms(record->updated_unix_ms);
  }
  // Events of an older attempt than the record's say nothing about the current one.
  auto current = [&](const v1::TaskEvent& e) { return !record || e.attempt() >= record->attempt; };
  for (const auto& item : events) {
    if (item.has_event() && current(item.event())) apply_event(s, item.event());
    if (item.has_status() && (!record || item.status().attempt() >= record->attempt)) apply_snapshot(s, item.status());
  }
  for (const auto& item : completion_batch) {
    if (item.has_event()) apply_event(s, item.event());
    if (item.has_completion()) {
      const auto& c = item.completion();
      *s.mutable_completion() = c;
      s.set_state(c.state());
      s.set_attempt(c.attempt());
      if (!c.kind().empty()) s.set_kind(c.kind());
      s.set_worker_id(c.worker_id());
      if (c.created_unix_ms() != 0) s.set_created_unix_ms(c.created_unix_ms());
      if (c.unix_ms() != 0) s.set_updated_unix_ms(c.unix_ms());
      s.set_generation(c.generation());
      s.set_plugin_version(c.plugin_version());
      if (c.has_error()) s.set_detail(c.error().message());
      s.clear_pending_request_id();
      s.clear_pending_prompt();
    }
  }
  return s;
}

}  // namespace taskhost::transport::nats
