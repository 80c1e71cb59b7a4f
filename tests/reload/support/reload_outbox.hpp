// A TaskOutbox for the reload suites, whose plugin threads report progress in tight loops: it keeps state
// changes, messages, completions and the last checkpoint of each task, indexed by task id, and only
// counts progress and output events (a recording of every one would grow without bound). Thread-safe.
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

class ReloadOutbox : public transport::TaskOutbox {
 public:
  void on_event(const v1::TaskEvent& e) override {
    if (e.has_progress() || e.has_output()) {
      std::lock_guard lock(mu_);
      ++counted_;
      return;
    }
    add([&] { events_[e.task_id()].push_back(e); });
  }
  void on_heartbeat(const v1::Heartbeat&) override {}
  void on_completion(const v1::TaskCompletion& c) override { add([&] { completions_[c.task_id()].push_back(c); }); }
  void on_checkpoint(const std::string& id, uint32_t, std::string_view bytes) override {
    std::lock_guard lock(mu_);
    checkpoints_[id] = std::string(bytes);
  }

  std::optional<v1::TaskCompletion> wait_completion(const std::string& id,
                                                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return completions_.count(id) > 0; })) return std::nullopt;
    return completions_[id].front();
  }
  bool wait_state(const std::string& id, v1::TaskState state, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      for (const auto& e : events_[id]) {
        if (e.has_state() && e.state().state() == state) return true;
      }
      return false;
    });
  }
  // The text of the first outbound message of `id` starting with `prefix`.
  std::optional<std::string> wait_message(const std::string& id, const std::string& prefix,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    std::optional<std::string> found;
    cv_.wait_for(lock, timeout, [&] {
      for (const auto& e : events_[id]) {
        if (e.has_message() && e.message().text().starts_with(prefix)) {
          found = e.message().text();
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::vector<v1::TaskEvent> events_of(const std::string& id) {
    std::lock_guard lock(mu_);
    const auto it = events_.find(id);
    return it == events_.end() ? std::vector<v1::TaskEvent>{} : it->second;
  }
  std::map<std::string, std::vector<v1::TaskCompletion>> completions() {
    std::lock_guard lock(mu_);
    return completions_;
  }
  std::string checkpoint(const std::string& id) {
    std::lock_guard lock(mu_);
    const auto it = checkpoints_.find(id);
    return it == checkpoints_.end() ? std::string() : it->second;
  }
  uint64_t counted_events() {
    std::lock_guard lock(mu_);
    return counted_;
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
  std::map<std::string, std::vector<v1::TaskEvent>> events_;  // state changes and messages
  std::map<std::string, std::vector<v1::TaskCompletion>> completions_;
  std::map<std::string, std::string> checkpoints_;
  uint64_t counted_ = 0;  // progress and output events
};

}  // namespace taskhost::testing
