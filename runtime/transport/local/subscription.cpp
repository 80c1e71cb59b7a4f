#include "transport/local/subscription.hpp"

namespace taskhost::transport::local {

Subscription::Subscription(std::string task_filter, size_t capacity, std::function<void()> notify)
    : task_filter_(std::move(task_filter)), capacity_(capacity), notify_(std::move(notify)) {}

void Subscription::push(const v1::WatchItem& item) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    if (items_.size() >= capacity_) {
      overflowed_ = true;
      closed_ = true;
      items_.clear();
    } else {
      items_.push_back(item);
    }
  }
  if (notify_) notify_();
}

void Subscription::close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
  }
  if (notify_) notify_();
}

std::vector<v1::WatchItem> Subscription::take() {
  std::lock_guard lock(mu_);
  std::vector<v1::WatchItem> out;
  out.swap(items_);
  return out;
}

bool Subscription::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

bool Subscription::overflowed() const {
  std::lock_guard lock(mu_);
  return overflowed_;
}

}  // namespace taskhost::transport::local
