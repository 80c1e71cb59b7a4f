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
      join_finished_locked();
      Destroyer& d = destroyers_.emplace_back();
      try {
        d.thread = std::thread([generation, &d] {
          delete generation;  // on_destroy_executor of each kind, then dlclose
          d.done.store(true, std::memory_order_release);
        });
        return;
      } catch (const std::system_error& e) {
        destroyers_.pop_back();
        lock.unlock();
        log::warn("plugins: no thread to destroy generation {} on ({}); destroyed here", generation->id(), e.what());
      }
    }
  }
  delete generation;  // no thread for it, or after stop(): where the reference dropped
}

void GenerationReleaser::join_finished_locked() {
  for (auto it = destroyers_.begin(); it != destroyers_.end();) {
    if (!it->done.load(std::memory_order_acquire)) {
      ++it;
      continue;
    }
    it->thread.join();  // it has returned from the destroy, or is about to: a short wait at most
    it = destroyers_.erase(it);
  }
}

void GenerationReleaser::stop() {
  std::list<Destroyer> joining;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    joining.splice(joining.end(), destroyers_);
  }
  for (Destroyer& d : joining) d.thread.join();
}

}  // namespace taskhost::registry
