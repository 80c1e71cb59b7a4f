#include "transport/nats/control_channel.hpp"

#include "common/log.hpp"

#include <algorithm>
#include <cstring>

namespace taskhost::transport::nats {
namespace {

constexpr size_t kMaxKept = 100'000;     // kept messages, all tasks together
constexpr size_t kMaxClosed = 20'000;    // ended task ids remembered for "task ended" answers

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
  std::lock_guard lock(mu_);
  sub_ = sub;
}

void ControlChannel::stop() {
  close_subscription(mu_, sub_);
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
  for (const auto& item : items) {
    if (item.stored_unix_ns != 0 && item.stored_unix_ns < assigned_unix_ns) continue;
    touched_.insert(task_id);
    hooks_.apply(item);
  }
}

bool ControlChannel::close(const std::string& task_id, uint32_t attempt) {
  std::lock_guard lock(mu_);
  if (auto o = open_.find(task_id); o != open_.end() && o->second <= attempt) open_.erase(o);
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
  static_cast<ControlChannel*>(closure)->handle(msg);
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

void ControlChannel::handle(natsMsg* msg) {
  ControlItem item;
  item.received = std::chrono::steady_clock::now();
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    item.seq = meta->Sequence.Stream;
    item.stored_unix_ns = meta->Timestamp;
    jsMsgMetaData_Destroy(meta);
  }
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
    log::warn("nats: ignoring a malformed control message (stream sequence {})", item.seq);
    return;
  }

  std::lock_guard lock(mu_);
  if (item.seq != 0) {
    if (item.seq <= last_seq_) return;
    last_seq_ = item.seq;
  }
  if (open_.count(item.task_id)) {
    touched_.insert(item.task_id);
    hooks_.apply(item);
    return;
  }
  if (closed_.count(item.task_id)) {
    hooks_.ended(item);
    return;
  }
  kept_order_.push_back(KeptRef{item.received, item.task_id, item.seq});
  kept_[item.task_id].push_back(std::move(item));
  ++kept_count_;
  expire_locked();
}

}  // namespace taskhost::transport::nats
