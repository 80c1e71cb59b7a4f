// A TaskOutbox that records everything the router publishes, with waits for tests. Thread-safe.
#pragma once

#include "transport/outbox.hpp"

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace taskhost::testing {

class RecordingOutbox : public transport::TaskOutbox {
 private:
  template <typename Fn>
  auto locked(Fn&& fn) {
    std::lock_guard lock(mu_);
    return fn();
  }

 public:
  void on_event(const v1::TaskEvent& e) override { add([&] { events_.push_back(e); }); }
  void on_heartbeat(const v1::Heartbeat& h) override { add([&] { heartbeats_.push_back(h); }); }
  void on_completion(const v1::TaskCompletion& c) override { add([&] { completions_.push_back(c); }); }
  void on_checkpoint(const std::string& id, uint32_t, std::string_view bytes) override {
    add([&] { checkpoints_[id] = std::string(bytes); });
  }
  // Final receipts of messages whose sender had a provisional one.
  void on_delivery(const v1::DeliveryReceipt& r) override { add([&] { deliveries_.push_back(r); }); }

  std::optional<v1::DeliveryReceipt> wait_delivery(const std::string& message_id,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::optional<v1::DeliveryReceipt> found;
    wait_until([&] {
      for (const auto& r : deliveries_) {
        if (r.message_id() == message_id) {
          found = r;
          return true;
        }
      }
      return false;
    }, timeout);
    return found;
  }

  bool wait_heartbeats(size_t n, std::chrono::milliseconds timeout) {
    return wait_until([&] { return heartbeats_.size() >= n; }, timeout);
  }

  // Waits until `pred` holds or `timeout` passes. `pred` runs under the outbox's lock, so it may read the
  // recorded vectors directly but must not call this object's other methods.
  bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, pred);
  }

  std::optional<v1::TaskCompletion> wait_completion(const std::string& id,
                                                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::optional<v1::TaskCompletion> found;
    wait_until([&] {
      for (const auto& c : completions_) {
        if (c.task_id() == id) {
          found = c;
          return true;
        }
      }
      return false;
    }, timeout);
    return found;
  }

  // Waits for an outbound message on `id` whose text starts with `prefix`; returns its text.
  std::optional<std::string> wait_message(const std::string& id, const std::string& prefix,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::optional<std::string> found;
    wait_until([&] {
      for (const auto& e : events_) {
        if (e.task_id() == id && e.has_message() && e.message().text().rfind(prefix, 0) == 0) {
          found = e.message().text();
          return true;
        }
      }
      return false;
    }, timeout);
    return found;
  }

  bool wait_state(const std::string& id, v1::TaskState state, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return wait_until([&] {
      for (const auto& e : events_) {
        if (e.task_id() == id && e.has_state() && e.state().state() == state) return true;
      }
      return false;
    }, timeout);
  }

  std::vector<v1::TaskEvent> events() { return locked([&] { return events_; }); }
  std::vector<v1::TaskEvent> events_of(const std::string& id) {
    return locked([&] {
      std::vector<v1::TaskEvent> out;
      for (const auto& e : events_) if (e.task_id() == id) out.push_back(e);
      return out;
    });
  }
  std::vector<v1::Heartbeat> heartbeats() { return locked([&] { return heartbeats_; }); }
  std::vector<v1::TaskCompletion> completions() { return locked([&] { return completions_; }); }
  size_t completion_count(const std::string& id) {
    return locked([&] {
      size_t n = 0;
      for (const auto& c : completions_) n += c.task_id() == id;
      return n;
    });
  }
  std::string checkpoint(const std::string& id) {
    return locked([&] { auto it = checkpoints_.find(id); return it == checkpoints_.end() ? std::string() : it->second; });
  }

 private:
  template <typename Fn>
  void add(Fn&& fn) {
    {
      std::lock_guard lock(mu_);
      fn();
    }
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::TaskEvent> events_;
  std::vector<v1::Heartbeat> heartbeats_;
  std::vector<v1::TaskCompletion> completions_;
  std::map<std::string, std::string> checkpoints_;
  std::vector<v1::DeliveryReceipt> deliveries_;
};

}  // namespace taskhost::testing
