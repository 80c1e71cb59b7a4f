#include "transport/nats/puller.hpp"

#include "common/log.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace taskhost::transport::nats {
namespace {

// How long past its expiry a request may stay silent before it is taken as lost.
constexpr auto kSilenceGrace = std::chrono::seconds(2);
constexpr uint32_t kMaxBatch = 4096;
// How often an idle kind looks for work.
constexpr auto kIdlePoll = std::chrono::milliseconds(100);

bool parse_u64(std::string_view s, uint64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

Puller::Puller(Connection& connection, const Names& names, const NatsOptions& options, Hooks hooks)
    : connection_(connection), names_(names), options_(options), hooks_(std::move(hooks)) {
  {
    std::lock_guard lock(mu_);
    subscribe_locked();
  }
  connection_.on_reconnected([this] {
    std::lock_guard lock(mu_);
    resubscribe_ = true;
    woken_ = true;
    cv_.notify_all();
  });
  thread_ = std::thread([this] { loop(); });
}

Puller::~Puller() { stop(); }

void Puller::set_kinds(const std::vector<std::string>& kinds) {
  std::lock_guard lock(mu_);
  for (auto& [name, k] : kinds_) k->wanted = false;
  for (const auto& kind : kinds) {
    auto& slot = kinds_[kind];
    if (!slot) {
      slot = std::make_unique<KindState>();
      slot->kind = kind;
      slot->subject = names_.task_subject(kind);
      slot->pull_subject = names_.pull_subject(names_.consumer_name(kind));
      slot->index = by_index_.size();
      by_index_.push_back(slot.get());
      by_subject_[slot->subject] = slot.get();
    }
    slot->wanted = true;
  }
  woken_ = true;
  cv_.notify_all();
}

void Puller::settled(const std::string& kind, size_t messages) {
  std::lock_guard lock(mu_);
  settle_locked(kind, messages);
  wake_locked();
}

void Puller::settle_locked(const std::string& kind, size_t messages) {
  auto it = kinds_.find(kind);
  if (it != kinds_.end()) it->second->unsettled -= std::min(it->second->unsettled, messages);
}

void Puller::wake() {
  std::lock_guard lock(mu_);
  wake_locked();
}

void Puller::wake_locked() {
  if (woken_) return;  // already on its way: one wake-up covers every slot freed until it runs
  // A wake-up is a futex wake and a context switch, once per task on a busy host: skip it when the loop
  // could not send anything anyway. A kind with a request in flight wakes the loop itself when that
  // request ends (handle()); an idle kind polls on its own clock.
  const auto now = std::chrono::steady_clock::now();
  bool useful = false;
  for (const auto* k : by_index_) {
    if (k->wanted && !k->requesting && (k->busy || k->needs_setup || now - k->last_poll >= kIdlePoll)) {
      useful = true;
      break;
    }
  }
  if (!useful || paused_) return;
  woken_ = true;
  cv_.notify_all();
}

void Puller::pause() {
  std::lock_guard lock(mu_);
  paused_ = true;
}

void Puller::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  close_subscription(mu_, sub_);
  std::lock_guard lock(mu_);
  hand_back_gathered_locked();
}

Puller::Stats Puller::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Puller::subscribe_locked() {
  // Requests made on the old inbox may still be answered there: nobody listens any more, so those
  // messages stay unacked and come back after ack_wait, and no stale credit can be counted twice.
  close_subscription(sub_);
  sub_ = nullptr;
  hand_back_gathered_locked();
  natsInbox* inbox = nullptr;
  check(natsInbox_Create(&inbox), "pull inbox");
  inbox_ = inbox;
  natsInbox_Destroy(inbox);
  ++generation_;
  closures_.push_back(std::make_unique<SubClosure>(SubClosure{this, generation_}));
  check(natsConnection_Subscribe(&sub_, connection_.nc(), (inbox_ + ".>").c_str(), &Puller::on_msg,
                                 closures_.back().get()),
        "subscribe to pull inbox");
  natsSubscription_SetPendingLimits(sub_, -1, -1);
  for (auto* k : by_index_) k->requesting = false;
}

size_t Puller::credits_in_use_locked() const {
  size_t n = 0;
  for (const auto* k : by_index_) {
    n += k->unsettled;
    if (k->requesting) n += k->batch - k->delivered;
  }
  return n;
}

void Puller::request_locked(KindState& k, uint32_t batch, bool no_wait) {
  k.request_seq++;
  k.batch = batch;
  k.delivered = 0;
  k.requesting = true;
  k.expires_at = std::chrono::steady_clock::now() + options_.pull_expiry;
  const std::string reply = fmt::format("{}.{}.{}", inbox_, k.index, k.request_seq);
  const std::string body =
      no_wait ? fmt::format(R"({{"batch":{},"no_wait":true}})", batch)
              : fmt::format(R"({{"batch":{},"expires":{}}})", batch,
                            std::chrono::duration_cast<std::chrono::nanoseconds>(options_.pull_expiry).count());
  natsStatus s = natsConnection_PublishRequest(connection_.nc(), k.pull_subject.c_str(), reply.c_str(), body.data(),
                                               static_cast<int>(body.size()));
  if (s != NATS_OK) {
    // Disconnected with a full buffer, or closing: no request went out, so no credit is in use.
    k.requesting = false;
    return;
  }
  stats_.requests++;
  stats_.max_held = std::max(stats_.max_held, credits_in_use_locked());
}

void Puller::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return woken_ || stopping_; });
    woken_ = false;
    if (stopping_) break;
    if (resubscribe_) {
      resubscribe_ = false;
      try {
        subscribe_locked();
      } catch (const std::exception& e) {
        log::warn("nats: cannot renew the pull inbox: {}", e.what());
        resubscribe_ = true;
        continue;
      }
    }
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::string> setup;
    for (auto* k : by_index_) {
      if (k->requesting && now > k->expires_at + kSilenceGrace) {
        // No answer at all: the server lost the request (restart, leader change) or the consumer is gone.
        k->requesting = false;
        k->needs_setup = true;
      }
      if (k->wanted && k->needs_setup && now >= k->next_setup) setup.push_back(k->kind);
    }
    if (!setup.empty() && hooks_.ensure_consumer) {
      lock.unlock();
      for (const auto& kind : setup) hooks_.ensure_consumer(kind);
      lock.lock();
      for (const auto& kind : setup) {
        auto it = kinds_.find(kind);
        if (it == kinds_.end()) continue;
        it->second->needs_setup = false;
        it->second->next_setup = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      }
    }
    if (paused_ || by_index_.empty() || !connection_.connected()) continue;

    // The router reports min(kind free, host free) per kind; the largest of those is the host's free
    // capacity (exact as soon as one kind has no limit of its own, an underestimate otherwise).
    const size_t n = by_index_.size();
    std::vector<size_t> free(n, 0);
    size_t host_free = 0;
    for (size_t i = 0; i < n; ++i) {
      if (!by_index_[i]->wanted) continue;
      free[i] = hooks_.free_slots(by_index_[i]->kind);
      host_free = std::max(host_free, free[i]);
    }
    size_t in_use = credits_in_use_locked();
    // Kinds with no request out: a busy kind's long request leaves one slot for each of them, or a kind
    // that is idle now could not even look for work until that request expired (pull_expiry, 5 s by
    // default: QA's hello.greet waited that long behind one long interactive.count).
    size_t not_requesting = 0;
    for (size_t i = 0; i < n; ++i) {
      if (by_index_[i]->wanted && !by_index_[i]->requesting) ++not_requesting;
    }
    for (size_t j = 0; j < n && in_use < host_free; ++j) {
      const size_t i = (rr_ + j) % n;
      KindState& k = *by_index_[i];
      if (!k.wanted || k.requesting || free[i] <= k.unsettled) continue;
      --not_requesting;  // this one is about to ask
      if (k.busy) {
        // Its last request was filled: ask for all the room there is, and wait at the server for it.
        const size_t left = host_free - in_use;
        const size_t reserve = std::min(not_requesting, left - 1);  // always asks for one at least
        const size_t room = std::min(free[i] - k.unsettled, left - reserve);
        const auto batch = static_cast<uint32_t>(std::min<size_t>(room, kMaxBatch));
        request_locked(k, batch, false);
        if (k.requesting) in_use += batch;
      } else if (now - k.last_poll >= kIdlePoll) {
        // Idle: look for one message without waiting at the server, so an idle kind never sits on a
        // slot a busy one could use. Finding one makes it busy.
        k.last_poll = now;
        request_locked(k, 1, true);
        if (k.requesting) in_use += 1;
      }
    }
    rr_ = n == 0 ? 0 : (rr_ + 1) % n;
  }
}

void Puller::on_msg(natsConnection*, natsSubscription* sub, natsMsg* msg, void* closure) {
  auto* c = static_cast<SubClosure*>(closure);
  c->self->handle(c->generation, sub, msg);
}

void Puller::deliver_gathered(natsSubscription* sub, std::unique_lock<std::mutex>& lock) {
  int queued = 0;
  if (gathered_.empty() ||
      (gathered_.size() < kMaxDeliveryBatch && natsSubscription_GetPending(sub, &queued, nullptr) == NATS_OK && queued > 0)) {
    lock.unlock();
    return;
  }
  stats_.handovers++;
  stats_.largest_handover = std::max(stats_.largest_handover, gathered_.size());
  std::vector<Delivered> batch;
  batch.swap(gathered_);
  gathered_.reserve(kMaxDeliveryBatch);
  lock.unlock();
  hooks_.deliver(batch);
}

void Puller::hand_back_gathered_locked() {
  for (const auto& d : gathered_) {
    settle_locked(*d.kind, 1);
    stats_.handed_back++;
    hand_back(d.msg);
  }
  gathered_.clear();
}

void Puller::hand_back(natsMsg* msg) {
  const char* reply = natsMsg_GetReply(msg);
  if (reply != nullptr) natsConnection_PublishString(connection_.nc(), reply, "-NAK");
  natsMsg_Destroy(msg);
}

void Puller::handle(uint64_t generation, natsSubscription* sub, natsMsg* msg) {
  const char* reply = natsMsg_GetReply(msg);
  const bool is_task = reply != nullptr && std::strncmp(reply, "$JS.ACK.", 8) == 0;
  std::unique_lock lock(mu_);
  if (generation != generation_) {
    lock.unlock();
    if (is_task) {
      hand_back(msg);
    } else {
      natsMsg_Destroy(msg);
    }
    return;
  }
  if (is_task) {
    auto it = by_subject_.find(natsMsg_GetSubject(msg));
    KindState* k = it == by_subject_.end() ? nullptr : it->second;
    if (k == nullptr || !k->wanted || paused_ || stopping_ || !k->requesting || k->delivered >= k->batch) {
      stats_.handed_back++;
      hand_back(msg);
      deliver_gathered(sub, lock);
      return;
    }
    k->delivered++;
    k->unsettled++;
    stats_.delivered++;
    if (k->delivered == k->batch) {
      k->requesting = false;
      k->busy = true;
      woken_ = true;
      cv_.notify_all();
    }
    gathered_.push_back(Delivered{&k->kind, msg});
    deliver_gathered(sub, lock);
    return;
  }

  // A status for one of our requests: "<inbox>.<index>.<seq>" with a Status header.
  const std::string_view subject = natsMsg_GetSubject(msg);
  const char* status = nullptr;
  natsMsgHeader_Get(msg, "Status", &status);
  const std::string code = status != nullptr ? status : "";
  if (subject.size() > inbox_.size() + 1 && subject.substr(0, inbox_.size()) == inbox_) {
    std::string_view rest = subject.substr(inbox_.size() + 1);
    const size_t dot = rest.find('.');
    uint64_t index = 0, seq = 0;
    if (dot != std::string_view::npos && parse_u64(rest.substr(0, dot), &index) &&
        parse_u64(rest.substr(dot + 1), &seq) && index < by_index_.size()) {
      KindState& k = *by_index_[index];
      if (code != "100" && k.requesting && k.request_seq == seq) {
        // 408 expired, 404 nothing, 409 consumer deleted / limits exceeded, 503 no responders: the
        // request is over and the rest of its batch will never come.
        k.requesting = false;
        k.busy = false;
        if (code == "409" || code == "503") k.needs_setup = true;
        woken_ = true;
        cv_.notify_all();
      }
    }
  }
  natsMsg_Destroy(msg);
  deliver_gathered(sub, lock);
}

}  // namespace taskhost::transport::nats
