// Every call into a task's executor, each on that task's strand: start (and re-attach), deliver,
// cancel, reconcile, migrate (detach + re-attach on a newer generation) and the final release.
// The task mutex is never held across a plugin call.
#include "common/log.hpp"
#include "tasks/lifecycle.hpp"
#include "tasks/payload.hpp"
#include "tasks/router_impl.hpp"
#include "tasks/task_ref.hpp"

#include <fmt/format.h>


namespace taskhost::tasks {
namespace {

v1::DeliveryReceipt receipt(const Task& t, std::string_view message_id, v1::DeliveryReceipt::Outcome outcome,
                            std::string detail) {
  v1::DeliveryReceipt r;
  r.set_task_id(t.id);
  r.set_message_id(std::string(message_id));
  r.set_outcome(outcome);
  r.set_detail(std::move(detail));
  return r;
}

// The call view of the task's current attempt. `storage` keeps the checkpoint bytes alive for the call.
plugin::TaskCall make_call(const Task& t, bool reattach, const std::string& checkpoint) {
  plugin::TaskCall call;
  call.task = make_task_ref(t.serial, t.attempt);
  call.task_id = t.id.c_str();
  call.kind = t.kind.c_str();
  call.attempt = t.attempt;
  call.input = {reinterpret_cast<const uint8_t*>(t.encoded_input.data()), t.encoded_input.size()};
  call.reattach = reattach;
  call.checkpoint = {reinterpret_cast<const uint8_t*>(checkpoint.data()), checkpoint.size()};
  return call;
}

// The generation that starts the task wants the other encoding than the one the input was encoded in at
// assignment (a reload switched it in between): convert, from the exact Value when JSON was not exact.
// False (with `error`) only if the host's own bytes did not decode, which would be a host bug.
bool reencode_input(Task& t, th_encoding to, std::string* error) {
  google::protobuf::Value value;
  if (t.exact_input) {
    value = *t.exact_input;
  } else {
    const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(t.encoded_input.data()),
                                         t.encoded_input.size());
    if (!decode_value(bytes, t.input_encoding, &value, error)) return false;
  }
  bool lossy = false;
  t.encoded_input = encode_value(value, to, &lossy);
  t.input_encoding = to;
  if (lossy && !t.exact_input) t.exact_input = std::make_unique<google::protobuf::Value>(std::move(value));
  return true;
}

// "started on NAME VERSION (generation G, attempt A)": built by appending, on every task's path, where
// fmt::format's parsing and type dispatch cost more than the few copies it does.
std::string running_detail(bool reattach, const plugin::Generation& g, uint32_t attempt) {
  std::string d;
  d.reserve(48 + g.name().size() + g.version().size());
  d += reattach ? "re-attached on " : "started on ";
  d += g.name();
  d += ' ';
  d += g.version();
  d += " (generation ";
  d += fmt::format_int(g.id()).c_str();
  d += ", attempt ";
  d += fmt::format_int(attempt).c_str();
  d += ')';
  return d;
}

v1::ErrorCode code_for_start_failure(th_status s) {
  return s == TH_INVALID_ARGUMENT ? v1::INVALID_INPUT : v1::COMPONENT_FAILED;
}

std::string describe(const plugin::CallResult& r, std::string_view what) {
  std::string text(what);
  switch (r.status) {
    case TH_UNSUPPORTED: text += " is not supported by this kind"; break;
    case TH_INVALID_ARGUMENT: text += " rejected its input"; break;
    default: text += " failed"; break;
  }
  if (!r.error.empty()) text += ": " + r.error;
  return text;
}

}  // namespace

void Router::Impl::start_on_strand(const TaskPtr& t, const registry::Binding& on, std::string_view lost) {
  const registry::Binding binding = on ? on : registry.resolve(t->kind);
  bool reattach = false;
  bool ended = false;
  std::string checkpoint;
  plugin::TaskCall call;
  {
    std::lock_guard tl(t->mu);
    if (!t->ended && !binding) {
      fail_locked(*t, v1::COMPONENT_NOT_FOUND, "no plugin serves kind '" + t->kind + "' any more (task '" + t->id + "')");
    }
    std::string error;
    if (!t->ended && binding.executor->encoding() != t->input_encoding &&
        !reencode_input(*t, binding.executor->encoding(), &error)) {
      fail_locked(*t, v1::WORKER_ERROR, "task '" + t->id + "': the host could not re-encode its input: " + error);
    }
    ended = t->ended;  // also true when canceled between admission and now: nothing was started
    if (!ended) {
      t->binding = binding;
      t->generation_id = binding.generation->id();
      t->plugin_version = binding.generation->version();
      reattach = t->reattach;
      checkpoint = t->checkpoint;
      call = make_call(*t, reattach, checkpoint);
    }
  }
  if (ended) {
    finalize_on_strand(t);
    return;
  }
  {
    // From here the plugin holds the task's ref, so sink calls must find it. Indexed here, not at
    // admission: on the pool thread, which also removes it at retirement, so the submitting thread
    // never touches this index.
    SerialShard& sh = shard(t->serial);
    std::lock_guard shard_lock(sh.mu);
    sh.tasks.try_emplace(t->serial, t);
  }
  if (reattach && !binding.executor->can_reattach(call)) {
    {
      std::lock_guard tl(t->mu);
      fail_locked(*t, v1::WORKER_ERROR,
                  lost.empty() ? "task '" + t->id + "' was running on a lost worker and kind '" + t->kind +
                                     "' cannot re-attach"
                               : std::string(lost) + "; the plugin declined to re-attach it (can_reattach)",
                  "orphaned");
    }
    finalize_on_strand(t);
    return;
  }
  uint32_t attempt = 0;
  {
    std::lock_guard tl(t->mu);
    attempt = t->attempt;
    set_state_locked(*t, v1::RUNNING, running_detail(reattach, *binding.generation, attempt));
  }
  if (t->heartbeat_interval.count() > 0) schedule_heartbeat(t, attempt, Scheduler::Clock::now());

  const plugin::CallResult result = binding.executor->start(call);
  if (!result.ok()) {
    {
      std::lock_guard tl(t->mu);
      fail_locked(*t, code_for_start_failure(result.status), describe(result, "start of task '" + t->id + "'"));
    }
    finalize_on_strand(t);
    return;
  }
  // Steering that arrived before the start is delivered now, in arrival order.
  std::vector<v1::SteeringMessage> queued;
  {
    std::lock_guard tl(t->mu);
    queued.swap(t->queued);
  }
  const char* sent = reattach ? "sent before this attempt's start" : "sent before the start";
  for (auto& m : queued) deliver_provisional(t, std::move(m), sent);
}

void Router::Impl::deliver_provisional(const TaskPtr& t, v1::SteeringMessage message, std::string_view sent) {
  v1::DeliveryReceipt r;
  // deliver_on_strand answers inline, some answers with the task's lock held: look at it afterwards.
  deliver_on_strand(t, std::move(message), [&r](const v1::DeliveryReceipt& answer) { r = answer; });
  if (r.queued()) return;  // an answer held for its question: its outcome comes when the task asks
  if (r.outcome() != v1::DeliveryReceipt::ACCEPTED) {
    std::lock_guard tl(t->mu);
    if (!t->ended) {
      emit_locked(*t, [&](v1::TaskEvent& e) {
        e.mutable_state()->set_state(t->state);
        e.mutable_state()->set_detail(fmt::format("message '{}', {}, was not delivered: {}", r.message_id(), sent, r.detail()));
      });
    }
  }
  outbox.on_delivery(r);
}

void Router::Impl::deliver_on_strand(const TaskPtr& t, v1::SteeringMessage message, ReceiptCallback done) {
  registry::Binding binding;
  plugin::TaskCall call;
  std::string text, data;
  bool answers_request = false;
  uint64_t answered_request = 0;  // Task::input_requests when this answer was let through
  {
    std::lock_guard tl(t->mu);
    if (t->ended) {
      return done(receipt(*t, message.message_id(), v1::DeliveryReceipt::TASK_ENDED,
                          "task '" + t->id + "' already ended (" + std::string(state_name(t->state)) + ")"));
    }
    if (message.attempt() != 0 && message.attempt() != t->attempt) {
      return done(receipt(*t, message.message_id(), v1::DeliveryReceipt::REJECTED,
                          fmt::format("message names attempt {} but task '{}' is at attempt {}", message.attempt(),
                                      t->id, t->attempt)));
    }
    if (t->awaiting_process && message.attempt() != 0) {
      return done(receipt(*t, message.message_id(), v1::DeliveryReceipt::REJECTED,
                          fmt::format("message names attempt {} of task '{}', which ended with its plugin's process; "
                                      "the task is re-attached as attempt {} once the plugin runs again",
                                      message.attempt(), t->id, t->attempt + 1)));
    }
    if (t->awaiting_process) {
      // No process runs it: the re-attached attempt gets it after its start, as steering sent before a start.
      v1::DeliveryReceipt held = receipt(*t, message.message_id(), v1::DeliveryReceipt::ACCEPTED,
                                         "held: delivered when task '" + t->id +
                                             "' is re-attached in its plugin's next process");
      held.set_queued(true);
      t->queued.push_back(std::move(message));
      return done(held);
    }
    if (!message.in_reply_to().empty()) {
      if (t->pending_request_id.empty() && !t->asked_input) {
        // An answer ahead of its question: the task takes it when it asks (sink_request_input).
        v1::DeliveryReceipt held = receipt(*t, message.message_id(), v1::DeliveryReceipt::ACCEPTED,
                                           "held: delivered when task '" + t->id + "' asks for input '" +
                                               message.in_reply_to() + "'");
        held.set_queued(true);
        t->held_answers.push_back(std::move(message));
        return done(held);
      }
      if (t->pending_request_id != message.in_reply_to()) {
        return done(receipt(*t, message.message_id(), v1::DeliveryReceipt::REJECTED,
                            "task '" + t->id + "' is not waiting for input '" + message.in_reply_to() + "'" +
                                (t->pending_request_id.empty() ? std::string()
                                                               : " (it waits for '" + t->pending_request_id + "')")));
      }
      answers_request = true;
      answered_request = t->input_requests;
    }
    binding = t->binding;
    call = make_call(*t, false, {});
    // Text parts are joined; one data part crosses as that value, several as a list.
    google::protobuf::Value value;
    int data_parts = 0;
    for (const auto& part : message.parts()) {
      if (part.has_data()) {
        *value.mutable_list_value()->add_values() = part.data();
        ++data_parts;
      } else {
        if (!text.empty()) text += "\n";
        text += part.text();
      }
    }
    if (data_parts == 1) {
      google::protobuf::Value single = value.list_value().values(0);
      value = std::move(single);
    }
    if (data_parts > 0) data = encode_value(value, binding.executor->encoding());
  }
  if (!binding) {
    return done(receipt(*t, message.message_id(), v1::DeliveryReceipt::REJECTED, "task has no executor"));
  }
  plugin::MessageCall msg;
  msg.message_id = message.message_id();
  msg.text = text;
  msg.data = {reinterpret_cast<const uint8_t*>(data.data()), data.size()};
  msg.in_reply_to = message.in_reply_to();
  const plugin::CallResult result = binding.executor->deliver(call, msg);
  if (result.status == TH_UNSUPPORTED) {
    return done(receipt(*t, message.message_id(), v1::DeliveryReceipt::UNSUPPORTED,
                        result.error.empty() ? "kind '" + t->kind + "' does not take steering" : result.error));
  }
  if (!result.ok()) {
    return done(receipt(*t, message.message_id(), v1::DeliveryReceipt::REJECTED,
                        describe(result, "delivery to task '" + t->id + "'")));
  }
  if (answers_request) {
    std::lock_guard tl(t->mu);
    // Asked again during the delivery (a plugin that checks an answer and asks anew, even under the same
    // id): that newer question stands.
    if (t->pending_request_id == message.in_reply_to() && t->input_requests == answered_request) {
      t->pending_request_id.clear();
      t->pending_prompt.clear();
      set_state_locked(*t, v1::RUNNING, "input '" + message.in_reply_to() + "' answered");
    }
  }
  done(receipt(*t, message.message_id(), v1::DeliveryReceipt::ACCEPTED, "delivered"));
}

void Router::Impl::cancel_on_strand(const TaskPtr& t, v1::CancelRequest request, ReceiptCallback done) {
  registry::Binding binding;
  plugin::TaskCall call;
  {
    std::lock_guard tl(t->mu);
    if (t->ended) {
      return done(receipt(*t, {}, v1::DeliveryReceipt::TASK_ENDED,
                          "task '" + t->id + "' already ended (" + std::string(state_name(t->state)) + ")"));
    }
    binding = t->binding;
    call = make_call(*t, false, {});
    emit_locked(*t, [&](v1::TaskEvent& e) {
      e.mutable_state()->set_state(t->state);
      e.mutable_state()->set_detail(request.reason().empty() ? "cancel requested" : "cancel requested: " + request.reason());
    });
  }
  if (!binding) return done(receipt(*t, {}, v1::DeliveryReceipt::REJECTED, "task has no executor"));
  const plugin::CallResult result = binding.executor->cancel(call);
  if (!result.ok()) {
    return done(receipt(*t, {}, v1::DeliveryReceipt::ACCEPTED,
                        describe(result, "cancel") + "; the host ends the task at the cancel deadline"));
  }
  done(receipt(*t, {}, v1::DeliveryReceipt::ACCEPTED, "cancel requested"));
}

void Router::Impl::reconcile_on_strand(const TaskPtr& t, ReceiptCallback done) {
  registry::Binding binding;
  plugin::TaskCall call;
  {
    std::lock_guard tl(t->mu);
    if (t->ended) {
      return done(receipt(*t, {}, v1::DeliveryReceipt::TASK_ENDED, "task '" + t->id + "' already ended"));
    }
    if (!t->binding) return done(receipt(*t, {}, v1::DeliveryReceipt::ACCEPTED, "not started yet"));
    binding = t->binding;
    call = make_call(*t, false, {});
  }
  const plugin::CallResult result = binding.executor->reconcile(call);
  if (result.status == TH_UNSUPPORTED) {
    return done(receipt(*t, {}, v1::DeliveryReceipt::UNSUPPORTED, result.error));
  }
  if (!result.ok()) return done(receipt(*t, {}, v1::DeliveryReceipt::REJECTED, describe(result, "reconcile")));
  done(receipt(*t, {}, v1::DeliveryReceipt::ACCEPTED, "reconciled"));
}

bool Router::Impl::migrate_on_strand(const TaskPtr& t) {
  const registry::Binding target = registry.resolve(t->kind);
  registry::Binding old;
  plugin::TaskCall call;
  {
    std::lock_guard tl(t->mu);
    if (t->ended || !t->binding || !target || t->binding.generation == target.generation) return false;
    old = t->binding;
    call = make_call(*t, false, {});
  }
  if (!old.executor->can_reattach(call) || !target.executor->supports_reattach()) return false;
  const plugin::CallResult detached = old.executor->detach(call);
  if (!detached.ok()) return false;  // the old generation keeps the task; nothing changed
  next_attempt_on_strand(t, std::move(old), call, {}, {});
  return true;
}

void Router::Impl::leave_for_next_run_on_strand(const TaskPtr& t) {
  registry::Binding binding;
  plugin::TaskCall call;
  {
    std::lock_guard tl(t->mu);
    if (t->ended || t->released || !t->binding || t->cancel_requested) return;  // ending anyway
    binding = t->binding;
    call = make_call(*t, false, {});
  }
  if (binding.executor->can_reattach(call) && binding.executor->detach(call).ok()) {
    {
      std::lock_guard tl(t->mu);
      if (t->ended) return;  // it completed before the detach: the completion stands
      t->ended = true;       // late sink calls are answered TASK_ENDED, and nothing is published any more
      // Steering it had not taken yet stays unanswered in the transport, which delivers it again to the
      // next run's attempt: no "task ended" receipt for it (retire would send one).
      t->queued.clear();
      t->held_answers.clear();
    }
    log::info("task '{}' ({}): left for the next run, which re-attaches it from its last checkpoint", t->id, t->kind);
    binding = {};
    finalize_on_strand(t);  // releases it from the plugin and frees its slot, without a completion
    return;
  }
  v1::CancelRequest request;
  request.set_task_id(t->id);
  // The next run, or on a fleet another host: either re-attaches only what its kind can.
  request.set_reason(shutting_down() + ", and kind '" + t->kind + "' cannot re-attach the task");
  {
    std::lock_guard tl(t->mu);
    if (!t->cancel_requested) t->shutdown_reason = request.reason();
  }
  request_cancel(t, request, [](const v1::DeliveryReceipt&) {});
}

void Router::Impl::next_attempt_on_strand(const TaskPtr& t, registry::Binding old, const plugin::TaskCall& call,
                                          const registry::Binding& on, std::string_view lost) {
  old.executor->release(call);
  bool canceled = false;
  {
    std::lock_guard tl(t->mu);
    t->binding = {};       // released above: finalize must not release it again
    if (t->ended) return;  // it completed meanwhile: the completion stands
    if (t->cancel_requested) {
      // A cancel that came in while it changed hands set its deadline for the attempt that is gone:
      // nobody wants it started again.
      canceled = true;
      fail_locked(*t, v1::CANCELLED, "task '" + t->id + "' was canceled while it was being re-attached");
    } else {
      ++t->attempt;  // the old ref is now stale: late writes of the old attempt are dropped
      t->reattach = true;
      // The new attempt asks again what it needs: an answer meanwhile waits for that (held_answers).
      t->pending_request_id.clear();
      t->pending_prompt.clear();
      t->asked_input = false;
    }
  }
  old = {};  // this may have been the last task of the old generation: it is released here, on the strand
  if (canceled) {
    finalize_on_strand(t);
    return;
  }
  start_on_strand(t, on, lost);
}

void Router::Impl::reattach_lost_on_strand(const TaskPtr& t, uint32_t attempt, const std::string& reason) {
  registry::Binding old;
  plugin::TaskCall call;
  {
    std::lock_guard tl(t->mu);
    if (t->ended || t->attempt != attempt || !t->binding) return;  // it ended, or moved on, meanwhile
    t->awaiting_process = false;
    ++t->process_losses;
    const uint32_t limit = options.max_plugin_crashes;
    if (limit != 0 && t->process_losses >= limit) {
      fail_locked(*t, v1::WORKER_ERROR,
                  fmt::format("{}; it is not re-attached again: its plugin's process has ended {} times while it ran "
                              "([tasks] max_plugin_crashes = {})",
                              reason, t->process_losses, limit),
                  "plugin_crash");
    } else {
      old = t->binding;
      call = make_call(*t, false, {});
    }
  }
  if (!old) {
    finalize_on_strand(t);
    return;
  }
  log::warn("task '{}' ({}): {}; re-attaching it as attempt {}", t->id, t->kind, reason, attempt + 1);
  // On its own generation (whose new process it waited for), as any running task stays on the generation
  // that started it: a reload meanwhile moves it only through migrate(). The release reaches no process
  // (the one that had the task is gone); it only forgets the ref.
  const registry::Binding own = old;
  next_attempt_on_strand(t, std::move(old), call, own, reason);
}

void Router::Impl::fail_after_exception(const TaskPtr& t, const std::string& what) {
  log::error("task '{}' ({}): a call failed with an exception: {}", t->id, t->kind, what);
  {
    std::lock_guard tl(t->mu);
    fail_locked(*t, v1::WORKER_ERROR,
                "task '" + t->id + "': a call into kind '" + t->kind + "' threw an exception (" + what +
                    "); plugin.h forbids exceptions across the C ABI",
                "exception");
  }
  finalize_on_strand(t);
}

void Router::Impl::finalize_on_strand(const TaskPtr& t) {
  registry::Binding binding;
  plugin::TaskCall call;
  bool held_slot = false;
  {
    std::lock_guard tl(t->mu);
    if (t->released) return;
    t->released = true;
    held_slot = t->started;
    binding = std::move(t->binding);
    t->binding = {};
    if (binding) call = make_call(*t, false, {});
  }
  if (binding) {
    try {
      binding.executor->release(call);
    } catch (...) {  // the task is over either way: it must still leave the maps and free its slot
      log::error("task '{}' ({}): on_release threw an exception; plugin.h forbids exceptions across the C ABI",
                 t->id, t->kind);
    }
  }
  binding = {};  // drop the generation on a host thread, after the last call into it returned
  retire(t, held_slot);
}

}  // namespace taskhost::tasks
