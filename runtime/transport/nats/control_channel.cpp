#include "transport/nats/control_channel.hpp"

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
  close_subscription(mu_, sub_);
}

void ControlChannel::audit() {
  std::unordered_map<std::string, std::string> task_of;  // control subject → open task
  {
    std::lock_guard lock(mu_);
    for (const auto& [task_id, attempt] : open_) task_of.emplace(names_.control_subject(task_id), task_id);
  }
  if (task_of.empty()) return;
  const std::string wildcard = names_.control_wildcard();
  const std::string stream = names_.control_stream();
  jsOptions o;
  jsOptions_Init(&o);
  o.Stream.Info.SubjectsFilter = wildcard.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (const natsStatus s = js_GetStreamInfo(&si, connection_.js(), stream.c_str(), &o, &code); s != NATS_OK) {
    log::debug("nats: {}", describe(s, "audit of the control stream", code));
    return;
  }
  std::vector<std::string> behind;  // subjects holding more messages than this host handled for their task
  {
    std::lock_guard lock(mu_);
    for (int i = 0; si->State.Subjects != nullptr && i < si->State.Subjects->Count; ++i) {
      const jsStreamStateSubject& subject = si->State.Subjects->List[i];
      const auto t = task_of.find(subject.Subject);
      if (t == task_of.end() || !open_.count(t->second)) continue;
      const auto h = handled_.find(t->second);
      if (subject.Msgs > (h == handled_.end() ? 0 : h->second)) behind.push_back(subject.Subject);
    }
  }
  jsStreamInfo_Destroy(si);
  for (const auto& subject : behind) {
    for_each_stored(connection_.js(), stream, subject, [&](natsMsg* msg, uint64_t seq) {
      if (seq == 0) {
        natsMsg_Destroy(msg);
      } else if (handle(msg, seq, natsMsg_GetTime(msg))) {
        log::warn("nats: control message {} on {} had not been delivered here; handled now", seq, subject);
      }
    });
  }
}

void ControlChannel::open(const std::string& task_id, uint32_t attempt, int64_t assigned_unix_ns) {
  std::lock_guard lock(mu_);
  if (auto c = closed_.find(task_id); c != closed_.end()) {
    if (c->second >= attempt) return;
    closed_.erase(c);
  }
  open_[task_id] = attempt;
  auto it = kept_.find(task_id);
  if (it == kept_.end()) return;
  std::vector<ControlItem> items = std::move(it->second);
  kept_.erase(it);
  kept_count_ -= std::min(kept_count_, items.size());
  handled_[task_id] += items.size();  // applied or, meant for an earlier run, passed over: handled
  for (const auto& item : items) {
    if (item.stored_unix_ns != 0 && item.stored_unix_ns < assigned_unix_ns) continue;
    touched_.insert(task_id);
    hooks_.apply(item);
  }
}

bool ControlChannel::close(const std::string& task_id, uint32_t attempt) {
  std::lock_guard lock(mu_);
  if (auto o = open_.find(task_id); o != open_.end() && o->second <= attempt) {
    open_.erase(o);
    handled_.erase(task_id);
  }
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
  const std::string bytes = receipt.SerializeAsString();
  natsConnection_Publish(nc, reply.c_str(), bytes.data(), static_cast<int>(bytes.size()));
}

void ControlChannel::on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  uint64_t seq = 0;
  int64_t stored = 0;
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    seq = meta->Sequence.Stream;
    stored = meta->Timestamp;
    jsMsgMetaData_Destroy(meta);
  }
  static_cast<ControlChannel*>(closure)->handle(msg, seq, stored);
}

bool ControlChannel::seen_locked(uint64_t seq) {
  // Below the remembered window everything counts as seen: a consumer reset that replays the stream
  // from its beginning must not apply old messages again.
  if (seq <= forgotten_through_ || !seen_.insert(seq).second) return true;
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

bool ControlChannel::handle(natsMsg* msg, uint64_t seq, int64_t stored_unix_ns) {
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
  if (!ok || item.task_id.empty()) {
    std::lock_guard lock(mu_);
    if (item.seq == 0 || !seen_locked(item.seq)) {
      log::warn("nats: ignoring a malformed control message (stream sequence {})", item.seq);
    }
    return false;
  }

  std::lock_guard lock(mu_);
  if (item.seq != 0 && seen_locked(item.seq)) return false;
  if (open_.count(item.task_id)) {
    ++handled_[item.task_id];
    touched_.insert(item.task_id);
    hooks_.apply(item);
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
