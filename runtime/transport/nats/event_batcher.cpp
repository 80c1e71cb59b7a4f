#include "transport/nats/event_batcher.hpp"

#include "common/log.hpp"
#include "transport/nats/status_view.hpp"
#include "transport/nats/wire.hpp"

#include <fmt/format.h>

namespace taskhost::transport::nats {

EventBatcher::EventBatcher(AsyncPublisher& publisher, const Names& names, std::string worker_id,
                           CompletionStored stored, std::chrono::milliseconds linger, size_t max_batch_bytes)
    : publisher_(publisher), names_(names), worker_id_(std::move(worker_id)), stored_(std::move(stored)),
      linger_(linger), max_batch_bytes_(max_batch_bytes) {}

EventBatcher::Pending& EventBatcher::room_locked(const std::string& task_id, size_t more) {
  Pending& p = pending_locked(task_id);
  // A batch holding its completion is published as one, on the completion's subject: never cut.
  if (p.completion || p.batch.empty() || p.batch.size() + more <= max_batch_bytes_) return p;
  if (auto s = standing_.find(task_id); s != standing_.end()) append_status_item(p.batch, s->second);
  ready_.push_back(Ready{task_id, std::move(p)});
  p = Pending{};
  p.since = std::chrono::steady_clock::now();
  schedule_locked(p.since);
  return p;
}

EventBatcher::Pending& EventBatcher::pending_locked(const std::string& task_id) {
  auto [it, fresh] = pending_.try_emplace(task_id);
  if (fresh) {
    order_.push_back(task_id);
    it->second.since = std::chrono::steady_clock::now();
  }
  return it->second;
}

void EventBatcher::schedule_locked(std::chrono::steady_clock::time_point when) {
  if (scheduled_ && *scheduled_ <= when) return;  // an earlier flush will see it
  scheduled_ = when;
  publisher_.run_at(when, [this] { flush(); });
}

void EventBatcher::event(const v1::TaskEvent& event) {
  std::lock_guard lock(mu_);
  if (!dropped_.empty() && dropped_.count(event.task_id()) != 0) return;  // a fenced attempt's
  Pending& p = room_locked(event.task_id(), event.ByteSizeLong() + 16);
  // Nothing follows a completion: an event of the same attempt arriving after it (the router can emit
  // "accepted" late when the task already ran on another thread) is dropped, so the completion stays
  // the last word of its batch.
  if (p.completion && p.completion->attempt() == event.attempt()) return;
  v1::TaskStatus& standing = standing_[event.task_id()];
  if (event.attempt() < standing.attempt()) return;  // a late event of a superseded attempt
  apply_event(standing, event);
  if (p.batch.empty()) {
    p.attempt = event.attempt();
    p.first_seq = event.seq();
  }
  append_event_item(p.batch, event);
  schedule_locked(p.since + linger_);
}

void EventBatcher::completion(const v1::TaskCompletion& completion) {
  std::lock_guard lock(mu_);
  Pending& p = room_locked(completion.task_id(), completion.ByteSizeLong() + 16);
  append_completion_item(p.batch, completion);
  p.completion = completion;
  standing_.erase(completion.task_id());
  // A millisecond's wait lets a busy host store many completions per wake-up of the writer thread.
  schedule_locked(std::chrono::steady_clock::now() + std::chrono::milliseconds(1));
}

void EventBatcher::forget(const std::string& task_id) {
  std::lock_guard lock(mu_);
  standing_.erase(task_id);
  dropped_.erase(task_id);
}

void EventBatcher::drop(const std::string& task_id) {
  std::lock_guard lock(mu_);
  dropped_.insert(task_id);
  standing_.erase(task_id);
  pending_.erase(task_id);  // its entry in order_ is skipped by flush()
  std::erase_if(ready_, [&](const Ready& r) { return r.task_id == task_id; });
}

void EventBatcher::set_gate(std::function<bool()> open) {
  std::lock_guard lock(mu_);
  gate_ = std::move(open);
}

void EventBatcher::flush() {
  struct Out {
    std::string task_id;
    Pending p;
  };
  std::vector<Out> out;
  {
    std::lock_guard lock(mu_);
    scheduled_.reset();
    if (gate_ && !gate_()) {
      if (!ready_.empty() || !order_.empty()) schedule_locked(std::chrono::steady_clock::now() + linger_);
      return;
    }
    for (auto& r : ready_) out.push_back(Out{std::move(r.task_id), std::move(r.p)});  // older than any pending
    ready_.clear();
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::string> keep;
    std::optional<std::chrono::steady_clock::time_point> next;
    for (auto& id : order_) {
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;
      if (!it->second.completion && now < it->second.since + linger_) {
        const auto due = it->second.since + linger_;
        if (!next || due < *next) next = due;
        keep.push_back(std::move(id));
        continue;
      }
      if (!it->second.completion) {
        if (auto s = standing_.find(id); s != standing_.end()) append_status_item(it->second.batch, s->second);
      }
      out.push_back(Out{std::move(id), std::move(it->second)});
      pending_.erase(it);
    }
    order_ = std::move(keep);
    if (next) schedule_locked(*next);
  }
  for (auto& o : out) {
    if (o.p.completion) {
      publisher_.publish(names_.completion_subject(o.task_id), std::move(o.p.batch), {}, {}, Expect::empty_subject(),
                         [this, c = std::move(*o.p.completion)](const PublishResult& r) {
                           if (!r.stored && r.js_code != kJsWrongLastSequence) {
                             log::error("nats: completion of task {} not stored: {}", c.task_id(), r.error);
                           }
                           stored_(c, r);
                         });
    } else {
      // The id makes a resent batch a no-op: worker, task, attempt and first sequence name it uniquely.
      std::string msg_id = fmt::format("{}/{}/{}/{}", worker_id_, o.task_id, o.p.attempt, o.p.first_seq);
      publisher_.publish(names_.events_subject(o.task_id), std::move(o.p.batch), {}, std::move(msg_id),
                         Expect::none(), [id = o.task_id](const PublishResult& r) {
                           if (!r.stored) log::warn("nats: events of task {} not stored: {}", id, r.error);
                         });
    }
  }
}

}  // namespace taskhost::transport::nats
