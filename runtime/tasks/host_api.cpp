// The sink: the th_host_api table plugins call from any thread.
//
// Every function looks its task up by ref (never dereferences anything the plugin hands back), answers
// TASK_ENDED / STALE_ATTEMPT / UNKNOWN_TASK synchronously, applies the write under the task's mutex and
// publishes it in order. Nothing here calls back into the plugin and nothing throws across the ABI.
#include "common/json_text.hpp"
#include "common/log.hpp"
#include "common/utf8.hpp"
#include "tasks/lifecycle.hpp"
#include "tasks/payload.hpp"
#include "tasks/router_impl.hpp"
#include "tasks/task_ref.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace taskhost::tasks {
namespace {

using Impl = Router::Impl;

// Every table's context is a HostScope (plugin/host_scope.hpp): the router, and the generation it was
// handed to (0 for the router's own table).
Impl* self(th_host_context* ctx) { return reinterpret_cast<Impl*>(plugin::host_scope(ctx).host); }
// A plugin's C string as event text. Not UTF-8, it would make protobuf drop the field (or the rest of the
// message) and JSON readers choke: the bytes that break it become U+FFFD instead (common/utf8.hpp). Past
// kMaxPluginText it is cut, before a character the cut would split, and says so.
std::string str(const char* s) {
  if (s == nullptr) return {};
  std::string_view view(s, ::strnlen(s, kMaxPluginText + 1));
  const bool cut = view.size() > kMaxPluginText;
  if (cut) view = view.substr(0, utf8_cut(view, kMaxPluginText));  // not inside a character
  std::string out = valid_utf8(view) ? std::string(view) : utf8_sanitized(view);
  if (cut) out += fmt::format(" [cut at {} bytes]", kMaxPluginText);
  return out;
}
std::span<const uint8_t> span(th_bytes b) { return {b.data, b.data ? b.size : 0}; }

// A call the sink refuses is also logged, naming the task and what was wrong: a plugin that ignores the
// returned status otherwise leaves a task running with no trace of why.
th_status refused(const Task& t, std::string_view what) {
  log::warn("plugin {} task {}: {}: refused (TH_INVALID_ARGUMENT)", t.kind, t.id, what);
  return TH_INVALID_ARGUMENT;
}

// A payload over the host's limit is refused, and the host's log says which task sent what. So is one
// whose data is NULL with a size (plugin.h: NULL only with size 0), which used to pass as empty.
bool bad_payload(const Impl& impl, const Task& t, th_bytes b, std::string_view what) {
  if (b.data == nullptr && b.size != 0) {
    refused(t, fmt::format("{} has NULL data with a size of {} bytes", what, b.size));
    return true;
  }
  if (b.size <= impl.options.max_plugin_payload) return false;
  refused(t, fmt::format("{} of {} bytes is over the limit of {} bytes (max_plugin_payload_bytes)", what, b.size,
                         impl.options.max_plugin_payload));
  return true;
}

// Runs `fn` with the task of `ref` locked; converts any C++ exception into TH_FAILED.
template <typename Fn>
th_status with_task(th_host_context* ctx, th_task_ref ref, Fn&& fn) noexcept {
  try {
    auto locked = self(ctx)->lock_ref(ref);
    if (locked.status != TH_OK) return locked.status;  // ended or superseded: nothing would be written
    // The live attempt of a task another generation runs (another plugin's, or a newer load's of this
    // file after a migration, whose own ref differs in its attempt and was answered above): to the
    // caller it does not exist.
    const uint64_t generation = plugin::host_scope(ctx).generation;
    if (generation != 0 && locked.task->generation_id != generation) return TH_UNKNOWN_TASK;
    return fn(*self(ctx), *locked.task, locked);
  } catch (...) {
    return TH_FAILED;
  }
}

th_status sink_set_state(th_host_context* ctx, th_task_ref ref, th_task_state state, const char* detail) {
  return with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked&) -> th_status {
    const auto s = from_abi_state(state);
    if (!s || (*s != v1::RUNNING && *s != v1::WAITING_INPUT)) return TH_INVALID_ARGUMENT;  // terminal: use complete
    if (!impl.set_state_locked(t, *s, str(detail))) return TH_INVALID_ARGUMENT;
    // Running again withdraws the question (as the store, `status` and the SDK test kit take it): an answer
    // sent now is refused instead of delivered to a task that no longer waits for it.
    if (*s == v1::RUNNING && !t.pending_request_id.empty()) {
      t.pending_request_id.clear();
      t.pending_prompt.clear();
    }
    return TH_OK;
  });
}

th_status sink_progress(th_host_context* ctx, th_task_ref ref, double current, double total, const char* unit,
                        const char* label) {
  return with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked&) -> th_status {
    // NaN or infinity would reach every reader (JSON has no such numbers; bars and ETAs divide by them).
    if (!std::isfinite(current) || !std::isfinite(total)) {
      return refused(t, fmt::format("progress({}, {}) is not a pair of finite numbers", current, total));
    }
    v1::Progress p;
    p.set_current(current);
    p.set_total(total);
    p.set_unit(str(unit));
    p.set_label(str(label));
    t.progress = p;
    impl.emit_locked(t, [&](v1::TaskEvent& e) { *e.mutable_progress() = p; });
    return TH_OK;
  });
}

th_status sink_output(th_host_context* ctx, th_task_ref ref, const char* stream, th_bytes delta) {
  return with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked&) -> th_status {
    if (bad_payload(impl, t, delta, "an output delta")) return TH_INVALID_ARGUMENT;
    impl.emit_locked(t, [&](v1::TaskEvent& e) {
      auto* o = e.mutable_output();
      o->set_stream(stream ? str(stream) : "stdout");
      const auto bytes = span(delta);
      o->set_delta(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    });
    return TH_OK;
  });
}

th_status sink_post(th_host_context* ctx, th_task_ref ref, const char* text, th_bytes data) {
  return with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked&) -> th_status {
    google::protobuf::Value value;
    std::string error;
    if (bad_payload(impl, t, data, "a message's data")) return TH_INVALID_ARGUMENT;
    const bool has_data = !span(data).empty();
    if (has_data && !decode_value(span(data), t.binding ? t.binding.executor->encoding() : TH_ENCODING_JSON, &value,
                                  &error)) {
      return TH_INVALID_ARGUMENT;
    }
    impl.emit_locked(t, [&](v1::TaskEvent& e) {
      auto* m = e.mutable_message();
      m->set_text(str(text));
      if (has_data) *m->mutable_data() = value;
    });
    return TH_OK;
  });
}

th_status sink_request_input(th_host_context* ctx, th_task_ref ref, const char* request_id, const char* prompt,
                             const char* schema) {
  return with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked& locked) -> th_status {
    if (!request_id || !*request_id) return TH_INVALID_ARGUMENT;
    if (!transition_allowed(t.state, v1::WAITING_INPUT)) return TH_INVALID_ARGUMENT;
    // The schema goes to clients as JSON: text that is not JSON would reach them as a question no one can
    // validate an answer against.
    if (schema != nullptr && *schema != '\0') {
      const size_t size = ::strnlen(schema, kMaxPluginText + 1);
      if (size > kMaxPluginText) {
        return refused(t, fmt::format("request_input '{}': expected_schema_json is over {} bytes", str(request_id),
                                      kMaxPluginText));
      }
      if (const std::string problem = json_text_problem(std::string_view(schema, size)); !problem.empty()) {
        return refused(t, fmt::format("request_input '{}': expected_schema_json is not JSON ({})", str(request_id),
                                      problem));
      }
    }
    // No on_deliver: no answer could ever reach it, and the task would wait for good (QA).
    if (t.binding && !t.binding.executor->supports_deliver()) return TH_UNSUPPORTED;
    t.pending_request_id = str(request_id);
    t.pending_prompt = str(prompt);
    ++t.input_requests;
    impl.emit_locked(t, [&](v1::TaskEvent& e) {
      auto* r = e.mutable_input_request();
      r->set_request_id(t.pending_request_id);
      r->set_prompt(str(prompt));
      r->set_expected_schema(str(schema));
    });
    impl.set_state_locked(t, v1::WAITING_INPUT, fmt::format("waiting for input '{}'", t.pending_request_id));
    t.asked_input = true;
    // An answer that came before this question is its answer: delivered now, on the strand (never from
    // inside this sink call: the plugin may hold its own lock here).
    const auto held = std::find_if(t.held_answers.begin(), t.held_answers.end(),
                                   [&](const v1::SteeringMessage& m) { return m.in_reply_to() == t.pending_request_id; });
    if (held != t.held_answers.end()) {
      v1::SteeringMessage answer = std::move(*held);
      t.held_answers.erase(held);
      impl.post(locked.task, [&impl, answer = std::move(answer)](const TaskPtr& task) mutable {
        impl.deliver_provisional(task, std::move(answer), "sent before the task asked for it");
      });
    }
    return TH_OK;
  });
}

th_status sink_append_artifact(th_host_context* ctx, th_task_ref ref, const char* name, const char* media_type,
                               const char* uri) {
  return with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked&) -> th_status {
    if (!name || !*name) return TH_INVALID_ARGUMENT;
    impl.emit_locked(t, [&](v1::TaskEvent& e) {
      auto* a = e.mutable_artifact();
      a->set_name(str(name));
      a->set_media_type(str(media_type));
      a->set_uri(str(uri));
    });
    return TH_OK;
  });
}

th_status sink_checkpoint(th_host_context* ctx, th_task_ref ref, th_bytes state) {
  return with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked&) -> th_status {
    if (bad_payload(impl, t, state, "a checkpoint")) return TH_INVALID_ARGUMENT;
    const auto bytes = span(state);
    t.checkpoint.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    impl.outbox.on_checkpoint(t.id, t.attempt, t.checkpoint);
    return TH_OK;
  });
}

th_status sink_heartbeat(th_host_context* ctx, th_task_ref ref, double fraction, const char* message) {
  return with_task(ctx, ref, [&](Impl&, Task& t, Impl::Locked&) -> th_status {
    // Negative: no fraction. Above 1 or NaN is a plugin bug; clamping it would hide the bug in the beat.
    if (std::isnan(fraction) || fraction > 1) {
      return refused(t, fmt::format("heartbeat fraction {} is not within 0..1 (negative for none)", fraction));
    }
    if (fraction >= 0) t.beat_fraction = fraction;
    if (message) t.beat_message = str(message);
    return TH_OK;
  });
}

th_status sink_complete(th_host_context* ctx, th_task_ref ref, const th_result* result) {
  TaskPtr finished;
  const th_status status = with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked& locked) -> th_status {
    if (!result) return refused(t, "complete() with a NULL result");
    if (result->struct_size < offsetof(th_result, error_message) + sizeof(result->error_message)) {
      return refused(t, fmt::format("complete() with a th_result of struct_size {}, smaller than the ABI 1.0 size {}",
                                    result->struct_size, offsetof(th_result, error_message) + sizeof(result->error_message)));
    }
    const auto state = from_abi_state(result->state);
    if (!state || !is_terminal(*state)) {
      return refused(t, fmt::format("complete() with state {}, not a terminal state (SUCCEEDED, FAILED or CANCELED)",
                                    static_cast<int>(result->state)));
    }
    if (result->output.data == nullptr && result->output.size != 0) {
      return refused(t, fmt::format("complete() with an output of NULL data and a size of {} bytes", result->output.size));
    }
    th_status answer = TH_OK;
    const ScratchScope scratch;
    v1::TaskCompletion& c = *scratch.make<v1::TaskCompletion>();
    impl.completion_locked(t, *state, c);
    if (*state == v1::SUCCEEDED && span(result->output).size() > impl.options.max_plugin_payload) {
      // Refused, and the task does not hang for it: it fails, naming the sizes.
      c.Clear();
      impl.completion_locked(t, v1::FAILED, c);
      c.mutable_error()->set_code(v1::WORKER_ERROR);
      c.mutable_error()->set_message(fmt::format("task '{}' succeeded with an output of {} bytes; the host takes at most {} "
                                                 "(max_plugin_payload_bytes)",
                                                 t.id, span(result->output).size(), impl.options.max_plugin_payload));
      c.mutable_error()->set_kind("too_large");
      answer = TH_INVALID_ARGUMENT;
    } else if (*state == v1::SUCCEEDED) {
      std::string error;
      const th_encoding enc = t.binding ? t.binding.executor->encoding() : TH_ENCODING_JSON;
      if (!decode_value(span(result->output), enc, c.mutable_output(), &error)) {
        // A malformed output must not leave the task hanging: it fails, naming why.
        c.Clear();
        impl.completion_locked(t, v1::FAILED, c);
        c.mutable_error()->set_code(v1::WORKER_ERROR);
        c.mutable_error()->set_message("task '" + t.id + "' succeeded with an output the host cannot read: " + error);
        c.mutable_error()->set_kind("invalid_output");
        answer = TH_INVALID_ARGUMENT;
      }
    } else {
      auto* err = c.mutable_error();
      const th_error_code code = result->error_code;
      err->set_code(*state == v1::CANCELED ? v1::CANCELLED
                    : (code > 0 && v1::ErrorCode_IsValid(code)) ? static_cast<v1::ErrorCode>(code)
                                                                : v1::COMPONENT_FAILED);
      err->set_message(result->error_message ? str(result->error_message) : std::string(state_name(*state)));
    }
    impl.end_locked(t, c);
    // Completing inside a call the host made on the task's strand (an instant kind completing in start):
    // that handler finalizes when the call returns. From any other thread, finalizing is queued behind
    // whatever call is running. Strand-only flag: set only while running on the strand.
    if (t.strand.running_in_this_thread()) {
      t.finalize_after_call = true;
    } else {
      finished = locked.task;
    }
    return answer;
  });
  if (finished) self(ctx)->post(finished, [impl = self(ctx)](const TaskPtr& t) { impl->finalize_on_strand(t); });
  return status;
}

// Through the host's log, so --log-format and --log-level apply to plugin lines too. A ref that names a
// live task is shown as its kind and id; anything else (0, ended, bogus) as the raw ref.
void sink_log(th_host_context* ctx, th_task_ref ref, int32_t level, const char* message) {
  try {
    const bool known = level >= TH_LOG_DEBUG && level <= TH_LOG_ERROR;
    const auto lvl = known ? static_cast<log::Level>(level) : log::Level::info;
    if (lvl < log::level()) return;
    const plugin::HostScope& scope = plugin::host_scope(ctx);
    std::string who = scope.plugin.empty() ? "plugin" : "plugin " + scope.plugin;
    if (ref != 0) {
      const TaskPtr t = self(ctx)->find_by_ref(ref);
      // generation_id is written under the task's lock; a stale read only picks the other wording.
      uint64_t runs_on = 0;
      if (t) {
        std::lock_guard lock(t->mu);
        runs_on = t->generation_id;
      }
      if (t && (scope.generation == 0 || runs_on == scope.generation)) {
        who += fmt::format(" {} task {}", t->kind, t->id);  // immutable fields
      } else {
        who += fmt::format(" [task-ref {}, not a task of this plugin's]", ref);
      }
    }
    log::write(lvl, fmt::format("{}: {}", who, str(message)));
  } catch (...) {
  }
}

// The host hooks (plugin/host_scope.hpp), from an isolated plugin's supervisor thread.
th_status hook_task_awaits_process(th_host_context* ctx, th_task_ref ref, const char* reason) noexcept {
  return with_task(ctx, ref, [&](Impl& impl, Task& t, Impl::Locked& locked) -> th_status {
    if (t.cancel_requested) {  // a cancel came before the crash: nobody wants it re-attached
      impl.fail_locked(t, v1::CANCELLED, "task '" + t.id + "' was canceled, and then " + str(reason));
      impl.post(locked.task, [&impl](const TaskPtr& ended) { impl.finalize_on_strand(ended); });
      return TH_TASK_ENDED;
    }
    t.awaiting_process = true;
    impl.set_state_locked(t, v1::RUNNING, str(reason) + "; it is re-attached once the plugin runs again");
    return TH_OK;
  });
}

// The decision is made on the task's strand, after any call of the task still queued there.
th_status hook_reattach_lost_task(th_host_context* ctx, th_task_ref ref, const char* reason) noexcept {
  try {
    TaskPtr task;
    uint32_t attempt = 0;
    const th_status status = with_task(ctx, ref, [&](Impl&, Task&, Impl::Locked& locked) -> th_status {
      task = locked.task;
      attempt = task->attempt;
      return TH_OK;
    });
    if (status != TH_OK) return status;
    self(ctx)->post(task, [impl = self(ctx), attempt, why = str(reason)](const TaskPtr& t) {
      impl->reattach_lost_on_strand(t, attempt, why);
    });
    return TH_OK;
  } catch (...) {
    return TH_FAILED;
  }
}

constexpr plugin::HostHooks kHostHooks{hook_task_awaits_process, hook_reattach_lost_task};

}  // namespace

const plugin::HostHooks* Impl::host_hooks() { return &kHostHooks; }

TaskPtr Impl::find_by_ref(th_task_ref ref) {
  SerialShard& sh = shard(ref_serial(ref));
  std::lock_guard lock(sh.mu);
  auto it = sh.tasks.find(ref_serial(ref));
  return it == sh.tasks.end() ? nullptr : it->second;
}

Impl::Locked Impl::lock_ref(th_task_ref ref) {
  Locked out;
  const uint64_t serial = ref_serial(ref);
  {
    SerialShard& sh = shard(serial);
    std::lock_guard lock(sh.mu);
    auto it = sh.tasks.find(serial);
    if (it == sh.tasks.end()) {
      const uint64_t issued = issued_serials.load(std::memory_order_acquire);
      out.status = (serial != 0 && serial <= issued) ? TH_TASK_ENDED : TH_UNKNOWN_TASK;
      return out;
    }
    out.task = it->second;
  }
  out.lock = std::unique_lock(out.task->mu);
  if (!ref_matches_attempt(ref, out.task->attempt)) {
    out.status = TH_STALE_ATTEMPT;
  } else if (out.task->ended) {
    out.status = TH_TASK_ENDED;
  }
  return out;
}

th_host_api Impl::make_host_api(Impl* impl) {
  th_host_api api{};
  api.struct_size = sizeof(api);
  api.abi_major = TASKHOST_ABI_MAJOR;
  api.abi_minor = TASKHOST_ABI_MINOR;
  api.context = reinterpret_cast<th_host_context*>(&impl->own_scope);
  api.set_state = sink_set_state;
  api.progress = sink_progress;
  api.output = sink_output;
  api.post = sink_post;
  api.request_input = sink_request_input;
  api.append_artifact = sink_append_artifact;
  api.checkpoint = sink_checkpoint;
  api.heartbeat = sink_heartbeat;
  api.complete = sink_complete;
  api.log = sink_log;
  return api;
}

}  // namespace taskhost::tasks
