#include "transport/nats/async_publisher.hpp"

#include "common/log.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace taskhost::transport::nats {
namespace {

// Failures after which sending the same message again is the right thing: the server did not answer,
// nobody was there to store it (a stream moving or a server restarting), or we were disconnected.
bool transient(natsStatus s, int js_code) {
  if (js_code != 0) return false;
  return s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS || s == NATS_CONNECTION_DISCONNECTED ||
         s == NATS_INSUFFICIENT_BUFFER || s == NATS_STALE_CONNECTION || s == NATS_IO_ERROR;
}

constexpr int kMaxErrorRetries = 50;

std::chrono::milliseconds backoff(int attempts) {
  const int64_t ms = std::min<int64_t>(2'000, int64_t{50} << std::min(attempts, 6));
  return std::chrono::milliseconds(ms);
}

}  // namespace

AsyncPublisher::AsyncPublisher(Connection& connection, std::chrono::milliseconds ack_timeout)
    : connection_(connection), ack_timeout_(ack_timeout) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = ack_timeout_.count();
  jo.PublishAsync.MaxPending = 65'536;
  {
    static std::mutex relays_mu;
    static auto* relays = new std::vector<std::unique_ptr<AckRelay>>();
    std::lock_guard lock(relays_mu);
    relay_ = relays->emplace_back(std::make_unique<AckRelay>()).get();
  }
  relay_->target = this;
  jo.PublishAsync.AckHandler = &AsyncPublisher::ack_handler;
  jo.PublishAsync.AckHandlerClosure = relay_;
  jo.PublishAsync.StallWait = 100;
  check(natsConnection_JetStream(&js_, connection_.nc(), &jo), "JetStream context for async publishing");
  thread_ = std::thread([this] { loop(); });
}

AsyncPublisher::~AsyncPublisher() { stop(); }

void AsyncPublisher::publish(std::string subject, std::string data,
                             std::vector<std::pair<std::string, std::string>> headers, std::string msg_id,
                             Expect expect, Done done) {
  Item item;
  item.subject = std::move(subject);
  item.data = std::move(data);
  item.headers = std::move(headers);
  item.msg_id = std::move(msg_id);
  item.expect = expect;
  item.done = std::move(done);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    ++unanswered_;
    queue_.push_back(std::move(item));
  }
  cv_.notify_one();
}

void AsyncPublisher::run(std::function<void()> fn) {
  Item item;
  item.fn = std::move(fn);
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    ++unanswered_;
    queue_.push_back(std::move(item));
  }
  cv_.notify_one();
}

void AsyncPublisher::run_at(std::chrono::steady_clock::time_point when, std::function<void()> fn) {
  Item item;
  item.fn = std::move(fn);
  item.not_before = when;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    ++unanswered_;
    retries_.push_back(std::move(item));
  }
  cv_.notify_one();
}

bool AsyncPublisher::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return unanswered_ == 0 || stopping_; }) && unanswered_ == 0;
}

size_t AsyncPublisher::in_flight() const {
  std::lock_guard lock(mu_);
  return unanswered_;
}

void AsyncPublisher::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  idle_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    // From here on an answer cnats still gives (to a publish it times out later) goes nowhere.
    std::lock_guard lock(relay_->mu);
    relay_->target = nullptr;
  }
  if (js_ != nullptr) {
    jsCtx_Destroy(js_);
    js_ = nullptr;
  }
}

void AsyncPublisher::loop() {
  std::vector<Item> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      for (;;) {
        if (stopping_) return;
        if (!queue_.empty()) break;
        auto next = std::chrono::steady_clock::time_point::max();
        for (const auto& r : retries_) next = std::min(next, r.not_before);
        if (next <= std::chrono::steady_clock::now()) break;
        if (retries_.empty()) {
          // Going idle: hand answered messages to cnats' collector now rather than hold them.
          lock.unlock();
          reaper_.flush();
          lock.lock();
          if (stopping_ || !queue_.empty() || !retries_.empty()) continue;
          cv_.wait(lock);
        } else {
          cv_.wait_until(lock, next);
        }
      }
      const auto now = std::chrono::steady_clock::now();
      for (auto it = retries_.begin(); it != retries_.end();) {
        if (it->not_before <= now) {
          batch.push_back(std::move(*it));
          it = retries_.erase(it);
        } else {
          ++it;
        }
      }
      while (!queue_.empty()) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (auto& item : batch) {
      if (item.fn) {
        item.fn();
        settled();
      } else {
        send(std::move(item));
      }
    }
    batch.clear();
  }
}

void AsyncPublisher::send(Item item) {
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, item.subject.c_str(), nullptr, item.data.data(), static_cast<int>(item.data.size()));
  for (const auto& [name, value] : item.headers) {
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, name.c_str(), value.c_str());
  }
  if (s != NATS_OK) {
    // Not a network problem: the message itself cannot be built. Answer at once.
    natsMsg_Destroy(msg);
    PublishResult r;
    r.permanent = true;
    r.error = describe(s, "build message for " + item.subject);
    answer(item, r);
    return;
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = ack_timeout_.count();
  const std::string msg_id = item.msg_id;  // po points into this copy for the duration of the call
  if (!msg_id.empty()) po.MsgId = msg_id.c_str();
  if (item.expect.kind == Expect::Kind::no_message) po.ExpectNoMessage = true;
  if (item.expect.kind == Expect::Kind::last_subject_seq) po.ExpectLastSubjectSeq = item.expect.seq;

  natsMsg* key = msg;
  {
    std::lock_guard lock(mu_);
    pending_.emplace(key, std::move(item));
  }
  s = js_PublishMsgAsync(js_, &msg, &po);
  if (s == NATS_OK) return;  // cnats owns the message now; the answer comes to on_ack

  natsMsg_Destroy(msg);
  std::unique_lock lock(mu_);
  auto it = pending_.find(key);
  if (it == pending_.end()) return;  // answered already (cannot normally happen on failure)
  Item back = std::move(it->second);
  pending_.erase(it);
  if (s == NATS_MAX_PAYLOAD) {
    // No retry can store it (retried, it was retried for ever and held up every drain): answer now.
    lock.unlock();
    PublishResult r;
    r.permanent = true;
    r.error = fmt::format("{}: {} bytes is more than the server's max_payload ({} bytes)", back.subject,
                          back.data.size(), natsConnection_GetMaxPayload(connection_.nc()));
    answer(back, r);
    return;
  }
  back.attempts++;
  note_retry(back.subject, natsStatus_GetText(s));
  back.not_before = std::chrono::steady_clock::now() + backoff(back.attempts);
  retries_.push_back(std::move(back));
  cv_.notify_one();
}

void AsyncPublisher::note_retry(const std::string& subject, const std::string& reason) {
  // A server restart makes every publish in flight retry at once: one line a second says so.
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(log_mu_);
  ++retries_since_log_;
  if (now - last_retry_log_ < std::chrono::seconds(1)) return;
  log::warn("nats: {} publish(es) retrying (latest: {}: {})", retries_since_log_, subject, reason);
  retries_since_log_ = 0;
  last_retry_log_ = now;
}

void AsyncPublisher::ack_handler(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* relay = static_cast<AckRelay*>(closure);
  std::lock_guard lock(relay->mu);
  if (relay->target == nullptr) {
    natsMsg_Destroy(msg);  // answered after stop(): nobody waits for it
    return;
  }
  relay->target->on_ack(msg, pa, pae);
}

void AsyncPublisher::on_ack(natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae) {
  Item item;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(msg);
    if (it == pending_.end()) {
      natsMsg_Destroy(msg);
      return;
    }
    item = std::move(it->second);
    pending_.erase(it);
  }
  reaper_.add(msg);

  PublishResult r;
  if (pa != nullptr) {
    r.stored = true;
    r.seq = pa->Sequence;
  } else {
    const natsStatus err = pae != nullptr ? pae->Err : NATS_ERR;
    const int code = pae != nullptr ? static_cast<int>(pae->ErrCode) : 0;
    // Transient failures are retried for ever; other JetStream errors (a stream limit, a stream that
    // is being recreated) for a while; a lost compare-and-set is a definite answer at once.
    const bool retry = transient(err, code) || (code != kJsWrongLastSequence && item.attempts < kMaxErrorRetries);
    if (retry) {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      item.attempts++;
      note_retry(item.subject, code != 0 ? "JetStream error " + std::to_string(code) : natsStatus_GetText(err));
      item.not_before = std::chrono::steady_clock::now() + backoff(item.attempts);
      retries_.push_back(std::move(item));
      cv_.notify_one();
      return;
    }
    r.js_code = code;
    r.error = std::string(natsStatus_GetText(err));
    if (pae != nullptr && pae->ErrText != nullptr) r.error += std::string(": ") + pae->ErrText;
  }
  answer(item, r);
}

void AsyncPublisher::answer(Item& item, const PublishResult& result) {
  if (item.done) item.done(result);
  settled();
}

void AsyncPublisher::settled() {
  std::lock_guard lock(mu_);
  if (--unanswered_ == 0) idle_cv_.notify_all();
}

}  // namespace taskhost::transport::nats
