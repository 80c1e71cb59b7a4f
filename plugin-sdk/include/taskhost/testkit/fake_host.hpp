// taskhost::testkit::FakeHost — a th_host_api (the sink table) for unit tests, with no real host.
//
// It records every sink call per task attempt and answers it by the host's rules:
//   - a ref it never issued answers TH_UNKNOWN_TASK (and is noted as a violation);
//   - an attempt superseded by a newer one answers TH_STALE_ATTEMPT;
//   - a task that reached a terminal state, or was released, answers TH_TASK_ENDED: terminal is final;
//   - set_state takes only running / waiting_input; request_input needs an id and a running task and
//     moves it to waiting_input; complete takes only a terminal state;
//   - for JSON kinds, message data must be JSON, and a success whose output is not JSON ends the task
//     failed (TH_ERROR_WORKER_ERROR) and answers TH_INVALID_ARGUMENT, as the host does;
//   - progress must be finite, a heartbeat fraction NaN-free and at most 1, an input request's schema
//     (when given) JSON of at most 64 KiB: otherwise TH_INVALID_ARGUMENT, and nothing changes;
//   - a call after the executors were destroyed is noted as a violation.
// The harness side (PluginUnderTest) drives the host-made changes: opening attempts, running before
// on_start, back to running when an answer is delivered, failing a start, the cancel deadline.
//
// Thread rule: every method is safe from any thread; sink calls from plugin threads and queries from the
// test thread may interleave freely. Sink calls never call back into the plugin and never block on it.
// Ownership: not copyable; api() points into this object, so it must outlive every executor using it.
#pragma once

#include <taskhost/plugin.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <taskhost/internal/json_check.hpp>
#include <taskhost/testkit/events.hpp>
#include <vector>

namespace taskhost::testkit {

class FakeHost {
 public:
  FakeHost() {
    api_.struct_size = sizeof(api_);
    api_.abi_major = TASKHOST_ABI_MAJOR;
    api_.abi_minor = TASKHOST_ABI_MINOR;
    api_.context = reinterpret_cast<th_host_context*>(this);
    api_.set_state = &FakeHost::sink_set_state;
    api_.progress = &FakeHost::sink_progress;
    api_.output = &FakeHost::sink_output;
    api_.post = &FakeHost::sink_post;
    api_.request_input = &FakeHost::sink_request_input;
    api_.append_artifact = &FakeHost::sink_append_artifact;
    api_.checkpoint = &FakeHost::sink_checkpoint;
    api_.heartbeat = &FakeHost::sink_heartbeat;
    api_.complete = &FakeHost::sink_complete;
    api_.log = &FakeHost::sink_log;
  }
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  // The table to hand to on_create_executor. Valid while this FakeHost lives.
  const th_host_api* api() const { return &api_; }

  // --- the host's side ----------------------------------------------------------------------------

  // A new attempt of task `id`: returns its ref. Every earlier attempt of `id` becomes superseded.
  th_task_ref open_attempt(const std::string& id, const std::string& kind, uint32_t attempt, th_encoding encoding) {
    std::lock_guard lock(mu_);
    for (auto& [ref, t] : attempts_) {
      if (t.view.id == id) t.view.superseded = true;
    }
    const th_task_ref ref = next_ref_++;
    Attempt& a = attempts_[ref];
    a.view.id = id;
    a.view.kind = kind;
    a.view.attempt = attempt;
    a.view.ref = ref;
    a.encoding = encoding;
    changed_.notify_all();
    return ref;
  }

  // A state change the host makes itself (e.g. running before on_start). Ignored once terminal.
  void host_state(th_task_ref ref, th_task_state state, const std::string& detail) {
    std::lock_guard lock(mu_);
    Attempt* a = find(ref);
    if (a == nullptr || a->view.terminal()) return;
    a->view.state = state;
    if (state != TH_STATE_WAITING_INPUT) a->view.pending_request.clear();
    Event e;
    e.type = EventType::state;
    e.by_host = true;
    e.state = state;
    e.text = detail;
    a->view.events.push_back(std::move(e));
    changed_.notify_all();
  }

  // An end the host decides (failed start, orphaned, cancel deadline). Ignored once terminal.
  void host_end(th_task_ref ref, TaskResult result) {
    std::lock_guard lock(mu_);
    Attempt* a = find(ref);
    if (a == nullptr || a->view.terminal()) return;
    Event e;
    e.type = EventType::complete;
    e.by_host = true;
    e.state = result.state;
    e.error_code = result.error_code;
    e.text = result.message;
    a->view.events.push_back(std::move(e));
    a->view.state = result.state;
    a->view.result = std::move(result);
    changed_.notify_all();
  }

  // After on_release: every later write for this attempt answers TH_TASK_ENDED.
  void close(th_task_ref ref) {
    std::lock_guard lock(mu_);
    if (Attempt* a = find(ref)) a->view.released = true;
    changed_.notify_all();
  }

  // After every on_destroy_executor: any sink call from now on is a violation.
  void executors_destroyed() {
    std::lock_guard lock(mu_);
    destroyed_ = true;
  }

  // --- queries (any thread) ------------------------------------------------------------------------

  std::optional<TaskView> view(th_task_ref ref) const {
    std::lock_guard lock(mu_);
    const auto it = attempts_.find(ref);
    if (it == attempts_.end()) return std::nullopt;
    return it->second.view;
  }

  // Waits until `ready(view)` holds for attempt `ref`, or `timeout` passes. Returns whether it held.
  bool wait(th_task_ref ref, const std::function<bool(const TaskView&)>& ready,
            std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, timeout, [&] {
      const auto it = attempts_.find(ref);
      return it != attempts_.end() && ready(it->second.view);
    });
  }

  // Rule breaks the fake host saw that no single task owns (unknown refs, calls after destruction).
  std::vector<std::string> violations() const {
    std::lock_guard lock(mu_);
    return violations_;
  }

  // Log lines written with task 0, as "level: text".
  std::vector<std::string> log_lines() const {
    std::lock_guard lock(mu_);
    return log_;
  }

 private:
  struct Attempt {
    TaskView view;
    th_encoding encoding = TH_ENCODING_JSON;
  };

  static FakeHost& self(th_host_context* ctx) { return *reinterpret_cast<FakeHost*>(ctx); }
  static std::string str(const char* s) { return s ? std::string(s) : std::string(); }
  static std::string bytes(th_bytes b) {
    return (b.data && b.size) ? std::string(reinterpret_cast<const char*>(b.data), b.size) : std::string();
  }

  Attempt* find(th_task_ref ref) {
    const auto it = attempts_.find(ref);
    return it == attempts_.end() ? nullptr : &it->second;
  }

  // Looks the attempt up and applies the rules every write shares; then `apply(attempt) -> th_status`.
  // The event is recorded with the final answer whether accepted or not.
  template <typename Fn>
  th_status write(th_task_ref ref, Event event, Fn&& apply) {
    std::lock_guard lock(mu_);
    if (destroyed_)
      violations_.push_back(std::string("sink call (") + to_string(event.type) + ") after on_destroy_executor");
    Attempt* a = find(ref);
    if (a == nullptr) {
      violations_.push_back(std::string("sink call (") + to_string(event.type) + ") with unknown task ref " +
                            std::to_string(ref));
      return TH_UNKNOWN_TASK;
    }
    if (a->view.superseded) {
      event.answer = TH_STALE_ATTEMPT;
    } else if (a->view.released || a->view.terminal()) {
      event.answer = TH_TASK_ENDED;
    } else {
      event.answer = apply(*a, event);
    }
    a->view.events.push_back(std::move(event));
    changed_.notify_all();
    return a->view.events.back().answer;
  }

  static constexpr size_t kMaxSchemaBytes = 64u << 10;  // the host's limit on a text a plugin sends

  static th_status sink_set_state(th_host_context* ctx, th_task_ref task, th_task_state state, const char* detail) {
    Event e;
    e.type = EventType::state;
    e.state = state;
    e.text = str(detail);
    return self(ctx).write(task, std::move(e), [state](Attempt& a, Event&) {
      if (state != TH_STATE_RUNNING && state != TH_STATE_WAITING_INPUT) return TH_INVALID_ARGUMENT;
      a.view.state = state;
      if (state == TH_STATE_RUNNING) a.view.pending_request.clear();
      return TH_OK;
    });
  }

  static th_status sink_progress(th_host_context* ctx, th_task_ref task, double current, double total, const char* unit,
                                 const char* label) {
    Event e;
    e.type = EventType::progress;
    e.current = current;
    e.total = total;
    e.unit = str(unit);
    e.label = str(label);
    return self(ctx).write(task, std::move(e), [](Attempt&, Event& ev) {
      return std::isfinite(ev.current) && std::isfinite(ev.total) ? TH_OK : TH_INVALID_ARGUMENT;
    });
  }

  static th_status sink_output(th_host_context* ctx, th_task_ref task, const char* stream, th_bytes delta) {
    Event e;
    e.type = EventType::output;
    e.stream = str(stream);
    e.data = bytes(delta);
    return self(ctx).write(task, std::move(e), [](Attempt&, Event&) { return TH_OK; });
  }

  static th_status sink_post(th_host_context* ctx, th_task_ref task, const char* text, th_bytes data) {
    Event e;
    e.type = EventType::post;
    e.text = str(text);
    e.data = bytes(data);
    return self(ctx).write(task, std::move(e), [](Attempt& a, Event& ev) {
      if (!ev.data.empty() && a.encoding == TH_ENCODING_JSON && !internal::JsonCheck::valid(ev.data)) {
        return TH_INVALID_ARGUMENT;
      }
      return TH_OK;
    });
  }

  static th_status sink_request_input(th_host_context* ctx, th_task_ref task, const char* request_id,
                                      const char* prompt, const char* schema) {
    Event e;
    e.type = EventType::input_request;
    e.request_id = str(request_id);
    e.text = str(prompt);
    e.schema = str(schema);
    return self(ctx).write(task, std::move(e), [](Attempt& a, Event& ev) {
      if (ev.request_id.empty()) return TH_INVALID_ARGUMENT;
      if (a.view.state != TH_STATE_RUNNING && a.view.state != TH_STATE_WAITING_INPUT) return TH_INVALID_ARGUMENT;
      if (!ev.schema.empty() && (ev.schema.size() > kMaxSchemaBytes || !internal::JsonCheck::valid(ev.schema))) {
        return TH_INVALID_ARGUMENT;
      }
      a.view.state = TH_STATE_WAITING_INPUT;
      a.view.pending_request = ev.request_id;
      return TH_OK;
    });
  }

  static th_status sink_append_artifact(th_host_context* ctx, th_task_ref task, const char* name,
                                        const char* media_type, const char* uri) {
    Event e;
    e.type = EventType::artifact;
    e.name = str(name);
    e.media_type = str(media_type);
    e.uri = str(uri);
    return self(ctx).write(task, std::move(e),
                           [](Attempt&, Event& ev) { return ev.name.empty() ? TH_INVALID_ARGUMENT : TH_OK; });
  }

  static th_status sink_checkpoint(th_host_context* ctx, th_task_ref task, th_bytes state) {
    Event e;
    e.type = EventType::checkpoint;
    e.data = bytes(state);
    return self(ctx).write(task, std::move(e), [](Attempt& a, Event& ev) {
      a.view.checkpoint = ev.data;
      return TH_OK;
    });
  }

  static th_status sink_heartbeat(th_host_context* ctx, th_task_ref task, double fraction, const char* message) {
    Event e;
    e.type = EventType::heartbeat;
    e.fraction = fraction;
    e.text = str(message);
    return self(ctx).write(task, std::move(e), [](Attempt&, Event& ev) {
      return std::isnan(ev.fraction) || ev.fraction > 1 ? TH_INVALID_ARGUMENT : TH_OK;  // negative: none
    });
  }

  static th_status sink_complete(th_host_context* ctx, th_task_ref task, const th_result* result) {
    Event e;
    e.type = EventType::complete;
    const bool readable = result != nullptr && TH_HAS_FIELD(result, th_result, error_message);
    if (readable) {
      e.state = result->state;
      e.data = bytes(result->output);
      e.error_code = result->error_code;
      e.text = str(result->error_message);
    }
    return self(ctx).write(task, std::move(e), [readable](Attempt& a, Event& ev) {
      if (!readable || !is_terminal(ev.state)) return TH_INVALID_ARGUMENT;
      TaskResult r;
      r.state = ev.state;
      th_status answer = TH_OK;
      if (ev.state == TH_STATE_SUCCEEDED) {
        r.output = ev.data;
        if (!ev.data.empty() && a.encoding == TH_ENCODING_JSON && !internal::JsonCheck::valid(ev.data)) {
          // As the host: a malformed output must not leave the task hanging; it fails, naming why.
          r = TaskResult{TH_STATE_FAILED, {}, TH_ERROR_WORKER_ERROR, "succeeded with an output that is not JSON"};
          answer = TH_INVALID_ARGUMENT;
        }
      } else if (ev.state == TH_STATE_FAILED) {
        r.error_code = ev.error_code > 0 ? ev.error_code : TH_ERROR_COMPONENT_FAILED;
        r.message = ev.text.empty() ? "failed" : ev.text;
      } else {
        r.error_code = TH_ERROR_CANCELLED;
        r.message = ev.text.empty() ? "canceled" : ev.text;
      }
      a.view.state = r.state;
      a.view.pending_request.clear();
      a.view.result = std::move(r);
      return answer;
    });
  }

  static void sink_log(th_host_context* ctx, th_task_ref task, int32_t level, const char* message) {
    FakeHost& host = self(ctx);
    std::lock_guard lock(host.mu_);
    if (host.destroyed_) host.violations_.push_back("sink call (log) after on_destroy_executor");
    if (task == 0) {
      host.log_.push_back(std::string(level_name(level)) + ": " + str(message));
      return;
    }
    // Logging is allowed after the end (the host only tags the line): record it, refuse nothing.
    Attempt* a = host.find(task);
    if (a == nullptr) return;
    Event e;
    e.type = EventType::log;
    e.level = level;
    e.text = str(message);
    a->view.events.push_back(std::move(e));
    host.changed_.notify_all();
  }

  static const char* level_name(int32_t level) {
    switch (level) {
      case TH_LOG_DEBUG:
        return "debug";
      case TH_LOG_WARN:
        return "warn";
      case TH_LOG_ERROR:
        return "error";
      default:
        return "info";
    }
  }

  th_host_api api_{};
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::map<th_task_ref, Attempt> attempts_;
  th_task_ref next_ref_ = 1;
  bool destroyed_ = false;
  std::vector<std::string> violations_;
  std::vector<std::string> log_;
};

}  // namespace taskhost::testkit
