#include "registry/generation_releaser.hpp"

#include "common/log.hpp"

#include <system_error>

namespace taskhost::registry {

std::shared_ptr<const plugin::Generation> GenerationReleaser::adopt(std::unique_ptr<plugin::Generation> generation) {
  if (!generation) return nullptr;
  // The deleter keeps the releaser alive: a generation may outlive the directory that loaded it.
  return std::shared_ptr<const plugin::Generation>(
      generation.release(), [self = shared_from_this()](const plugin::Generation* g) { self->release(g); });
}

void GenerationReleaser::release(const plugin::Generation* generation) {
  {
    std::unique_lock lock(mu_);
    if (!stopping_) {
      if (!thread_.joinable()) {
        try {
          thread_ = std::thread([this] { run(); });
        } catch (const std::system_error& e) {
          lock.unlock();
          log::warn("plugins: no thread to destroy generation {} on ({}); destroyed here", generation->id(), e.what());
          delete generation;
          return;
        }
      }
      queue_.push_back(generation);
      cv_.notify_one();
      return;
    }
  }
  delete generation;  // after stop(): where the reference dropped
}

void GenerationReleaser::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left
    const plugin::Generation* next = queue_.front();
    queue_.pop_front();
    lock.unlock();
    delete next;  // on_destroy_executor of each kind, then dlclose
    lock.lock();
  }
}

void GenerationReleaser::stop() {
  std::thread joining;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    joining.swap(thread_);
  }
  cv_.notify_all();
  if (joining.joinable()) joining.join();  // it drains the queue first
}

}  // namespace taskhost::registry
