#include "transport/nats/control_channel.hpp"

#include "common/failpoint.hpp"
#include "common/log.hpp"

#include <algorithm>
#include <cstring>

namespace taskhost::transport::nats {
namespace {

constexpr size_t kMaxKept = 100'000;     // kept messages, all tasks together
constexpr size_t kMaxClosed = 20'000;    // ended task ids remembered for "task ended" answers
constexpr size_t kMaxSeen = 100'000;     // stream sequences remembered, to drop a message handled before

}  // namespace

ControlChannel::ControlChannel(Connection& connection, const Names& names, const NatsOptions& options, Hooks hooks)
    : connection_(connection), names_(names), options_(options), hooks_(std::move(hooks)) {}

ControlChannel::~ControlChannel() { stop(); }

void ControlChannel::start() {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = nullptr;
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsSubscription* sub = nullptr;
  const std::string subject = names_.control_wildcard();
  check(js_Subscribe(&sub, connection_.js(), subject.c_str(), &ControlChannel::on_msg, this, nullptr, &so, &code),
        "subscribe to " + subject, code);
  natsSubscription_SetPendingLimits(sub, -1, -1);
  {
    std::lock_guard lock(mu_);
    sub_ = sub;
  }
  worker_ = std::make_unique<SerialWorker>(kAuditEvery, [this] { audit(); });
}

void ControlChannel::stop() {
  if (worker_) worker_->stop();
  // Drained (outside the lock: a callback running needs it), so afterwards no callback touches `this`.
  drain_subscription(mu_, sub_);
}

void ControlChannel::audit() {
  std::unordered_map<std::string, std::string> task_of;  // control subject → open task
  {
    std::lock_guard lock(mu_);
    for (const auto& [task_id, held] : open_) task_of.emplace(names_.control_subject(task_id), task_id);
  }
  if (task_of.empty()) return;
  const std::string wildcard = names_.control_wildcard();
  jsOptions o;
  jsOptions_Init(&o);
  o.Stream.Info.SubjectsFilter = wildcard.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (const natsStatus s = js_GetStreamInfo(&si, connection_.js(), names_.control_stream().c_str(), &o, &code);
      s != NATS_OK) {
    log::debug("nats: {}", describe(s, "audit of the control stream", code));
    return;
  }
  std::vector<std::string> behind;  // subjects holding more messages than this host handled for their task
  {
    std::lock_guard lock(mu_);
    for (int i = 0; si->State.Subjects != nullptr && i < si->State.Subjects->Count; ++i) {
      const jsStreamStateSubject& subject = si->State.Subjects->List[i];
      const auto t = task_of.find(subject.Subject);
      if (t == task_of.end()) continue;
      const auto held = open_.find(t->second);
      if (held != open_.end() && subject.Msgs > held->second.handled) behind.push_back(subject.Subject);
    }
  }
  jsStreamInfo_Destroy(si);
  for (const auto& subject : behind) {
    if (const size_t found = catch_up(subject, 1, UINT64_MAX); found > 0) {
      log::warn("nats: {} control message(s) on {} had not been delivered here; handled now", found, subject);
    }
  }
}

std::vector<ControlItem> ControlChannel::read_stored(const std::string& subject, uint64_t from, uint64_t before) {
  std::vector<ControlItem> items;
  for_each_stored(
      connection_.js(), names_.control_stream(), subject,
      [&](natsMsg* msg, uint64_t seq) {
        if (seq == 0) {
          natsMsg_Destroy(msg);
          return;
        }
        const int64_t stored = natsMsg_GetTime(msg);
        if (auto item = decode(msg, seq, stored)) items.push_back(std::move(*item));
      },
      from, before);
  return items;
}

size_t ControlChannel::catch_up(const std::string& subject, uint64_t from, uint64_t before) {
  size_t handled = 0;
  for (auto& item : read_stored(subject, from, before)) handled += handle(std::move(item)) ? 1 : 0;
  return handled;
}

void ControlChannel::open(const std::string& task_id, uint32_t attempt, int64_t assigned_unix_ns,
                          const ControlMark& resumed) {
  uint64_t newest_kept = 0;
  {
    std::lock_guard lock(mu_);
    if (closed_locked(task_id, attempt)) return;
    const auto it = kept_.find(task_id);
    if (it == kept_.end()) {
      open_locked(task_id, attempt, assigned_unix_ns, resumed, {}, {});
      return;
    }
    for (const auto& item : it->second) newest_kept = std::max(newest_kept, item.seq);
  }
  // Messages were kept for it. The consumer may have passed over others stored among them: read the
  // subject up to the newest kept one (the task stays unopened meanwhile, so live messages are kept
  // too) and apply the lot in stream order. Rare (steering sent before the task was picked up): the
  // usual open makes no request.
  std::vector<ControlItem> found = read_stored(names_.control_subject(task_id), 1, newest_kept + 1);
  std::lock_guard lock(mu_);
  if (closed_locked(task_id, attempt)) return;
  std::vector<ControlItem> kept;
  if (auto it = kept_.find(task_id); it != kept_.end()) {
    kept = std::move(it->second);
    kept_.erase(it);
    kept_count_ -= std::min(kept_count_, kept.size());
  }
  open_locked(task_id, attempt, assigned_unix_ns, resumed, std::move(kept), std::move(found));
}

bool ControlChannel::closed_locked(const std::string& task_id, uint32_t attempt) {
  auto c = closed_.find(task_id);
  if (c == closed_.end()) return false;
  if (c->second >= attempt) return true;
  closed_.erase(c);
  return false;
}

void ControlChannel::open_locked(const std::string& task_id, uint32_t attempt, int64_t assigned_unix_ns,
                                 const ControlMark& resumed, std::vector<ControlItem> kept,
                                 std::vector<ControlItem> found) {
  Open& held = open_[task_id];
  held.attempt = attempt;
  held.assigned_unix_ns = assigned_unix_ns;
  held.resumed = resumed;
  std::vector<ControlItem> items = std::move(kept);
  size_t passed_over = 0;
  for (auto& item : found) {
    if (item.seq != 0 && seen_locked(item.seq)) continue;  // kept, or handled since
    items.push_back(std::move(item));
    ++passed_over;
  }
  if (passed_over > 0) {
    log::warn("nats: {} control message(s) for task '{}' had not been delivered here; applied in order at its start",
              passed_over, task_id);
  }
  std::sort(items.begin(), items.end(), [](const ControlItem& x, const ControlItem& y) { return x.seq < y.seq; });
  for (const auto& item : items) apply_locked(held, item);
}

void ControlChannel::apply_locked(Open& held, const ControlItem& item) {
  ++held.handled;  // applied or, meant for an earlier run, passed over: handled either way
  held.last_seq = std::max(held.last_seq, item.seq);
  // Stored before this run's assignment (kept, or found late): meant for an earlier run of the task id.
  if (item.stored_unix_ns != 0 && item.stored_unix_ns < held.assigned_unix_ns) return;
  // Taken by an earlier attempt before the checkpoint this one resumes from: applied once already.
  if (item.seq != 0 && held.resumed.taken(item.seq)) return;
  touched_.insert(item.task_id);
  hooks_.apply(item);
}

bool ControlChannel::close(const std::string& task_id, uint32_t attempt) {
  std::lock_guard lock(mu_);
  if (auto o = open_.find(task_id); o != open_.end() && o->second.attempt <= attempt) open_.erase(o);
  const bool touched = touched_.erase(task_id) > 0;
  auto [c, fresh] = closed_.try_emplace(task_id, attempt);
  if (!fresh) {
    c->second = std::max(c->second, attempt);
  } else {
    closed_order_.push_back(task_id);
    while (closed_order_.size() > kMaxClosed) {
      closed_.erase(closed_order_.front());
      closed_order_.pop_front();
    }
  }
  return touched;
}

void ControlChannel::send_receipt(natsConnection* nc, const std::string& reply, const v1::DeliveryReceipt& receipt) {
  if (reply.empty()) return;
  // Core NATS: a receipt published around a reconnect can be lost, and the sender then answers from
  // the records (NatsTaskClient::control); the failpoint makes that happen on demand.
  if (failpoint("nats.control.lose_receipt")) return;
  const std::string bytes = receipt.SerializeAsString();
  natsConnection_Publish(nc, reply.c_str(), bytes.data(), static_cast<int>(bytes.size()));
}

void ControlChannel::on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* self = static_cast<ControlChannel*>(closure);
  uint64_t seq = 0;
  int64_t stored = 0;
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    seq = meta->Sequence.Stream;
    stored = meta->Timestamp;
    jsMsgMetaData_Destroy(meta);
  }
  std::optional<ControlItem> item = self->decode(msg, seq, stored);
  if (!item) return;
  // Tests make the consumer lose a message here, as it was seen to after a cluster node restarted.
  if (failpoint(item->type == ControlItem::Type::cancel ? "nats.control.lose_cancel" : "nats.control.lose_steer")) {
    return;
  }
  uint64_t from = 0;  // nonzero: the task is open here and messages before this one may have been passed over
  {
    std::lock_guard lock(self->mu_);
    const auto held = self->open_.find(item->task_id);
    if (held != self->open_.end() && seq != 0 && !self->handled_before_locked(seq) && seq > held->second.last_seq + 1) {
      from = held->second.last_seq + 1;
    }
  }
  if (from != 0) {
    const std::string subject = self->names_.control_subject(item->task_id);
    if (const size_t found = self->catch_up(subject, from, seq); found > 0) {
      log::warn("nats: {} control message(s) on {} before sequence {} had not been delivered here; handled first",
                found, subject, seq);
    }
  }
  self->handle(std::move(*item));
}

bool ControlChannel::handled_before_locked(uint64_t seq) const {
  // Below the remembered window everything counts as seen: a consumer reset that replays the stream
  // from its beginning must not apply old messages again.
  return seq <= forgotten_through_ || seen_.count(seq) > 0;
}

bool ControlChannel::seen_locked(uint64_t seq) {
  if (handled_before_locked(seq)) return true;
  seen_.insert(seq);
  if (seen_.size() > kMaxSeen) {
    forgotten_through_ = *seen_.begin();
    seen_.erase(seen_.begin());
  }
  return false;
}

void ControlChannel::expire_locked() {
  const auto now = std::chrono::steady_clock::now();
  while (!kept_order_.empty() &&
         (kept_count_ > kMaxKept || now - kept_order_.front().received > options_.control_max_age)) {
    const KeptRef& ref = kept_order_.front();
    auto it = kept_.find(ref.task_id);
    if (it != kept_.end()) {
      auto& items = it->second;
      for (auto i = items.begin(); i != items.end(); ++i) {
        if (i->seq == ref.seq) {
          items.erase(i);
          --kept_count_;
          break;
        }
      }
      if (items.empty()) kept_.erase(it);
    }
    kept_order_.pop_front();
  }
}

std::optional<ControlItem> ControlChannel::decode(natsMsg* msg, uint64_t seq, int64_t stored_unix_ns) {
  ControlItem item;
  item.received = std::chrono::steady_clock::now();
  item.seq = seq;
  item.stored_unix_ns = stored_unix_ns;
  const char* type = nullptr;
  natsMsgHeader_Get(msg, kControlHeader, &type);
  const char* reply = nullptr;
  if (natsMsgHeader_Get(msg, kReplyHeader, &reply) == NATS_OK && reply != nullptr) item.reply = reply;
  const void* data = natsMsg_GetData(msg);
  const int len = natsMsg_GetDataLength(msg);
  bool ok = false;
  if (type != nullptr && std::strcmp(type, "cancel") == 0) {
    item.type = ControlItem::Type::cancel;
    ok = item.cancel.ParseFromArray(data, len);
    item.task_id = item.cancel.task_id();
  } else {
    item.type = ControlItem::Type::steer;
    ok = item.steer.ParseFromArray(data, len);
    item.task_id = item.steer.task_id();
  }
  natsMsg_Destroy(msg);
  if (ok && !item.task_id.empty()) return item;
  std::lock_guard lock(mu_);
  if (seq == 0 || !seen_locked(seq)) log::warn("nats: ignoring a malformed control message (stream sequence {})", seq);
  return std::nullopt;
}

bool ControlChannel::handle(ControlItem item) {
  std::lock_guard lock(mu_);
  if (item.seq != 0 && seen_locked(item.seq)) return false;
  if (auto held = open_.find(item.task_id); held != open_.end()) {
    apply_locked(held->second, item);
    return true;
  }
  if (closed_.count(item.task_id)) {
    hooks_.ended(item);
    return true;
  }
  kept_order_.push_back(KeptRef{item.received, item.task_id, item.seq});
  kept_[item.task_id].push_back(std::move(item));
  ++kept_count_;
  expire_locked();
  return true;
}

}  // namespace taskhost::transport::nats
