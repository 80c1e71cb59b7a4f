#include "transport/local/subscription.hpp"

#include <fmt/format.h>

namespace taskhost::transport::local {

Subscription::Subscription(std::string task_filter, size_t capacity, size_t capacity_bytes, std::function<void()> notify)
    : task_filter_(std::move(task_filter)), capacity_(capacity), capacity_bytes_(capacity_bytes), notify_(std::move(notify)) {}

void Subscription::push(const v1::WatchItem& item) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    const size_t size = item.ByteSizeLong();
    if (items_.size() >= capacity_ || bytes_ + size > capacity_bytes_) {
      overflow_reason_ = fmt::format("the reader fell {} items ({} bytes) behind; the limits are {} items and {} bytes",
                                     items_.size() + 1, bytes_ + size, capacity_, capacity_bytes_);
      overflowed_ = true;
      closed_ = true;
      items_.clear();
      bytes_ = 0;
    } else {
      items_.push_back(item);
      bytes_ += size;
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
  bytes_ = 0;
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

std::string Subscription::overflow_reason() const {
  std::lock_guard lock(mu_);
  return overflow_reason_;
}

}  // namespace taskhost::transport::local
