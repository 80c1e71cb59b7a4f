#include "host/generation_drainer.hpp"

#include "common/log.hpp"

namespace taskhost {

GenerationDrainer::GenerationDrainer(tasks::Router& router, std::chrono::milliseconds deadline)
    : router_(router),
      deadline_(deadline),
      scheduler_(deadline.count() > 0 ? std::make_unique<tasks::Scheduler>() : nullptr) {}

GenerationDrainer::~GenerationDrainer() { stop(); }

void GenerationDrainer::stop() {
  if (scheduler_) scheduler_->stop();
}

void GenerationDrainer::track(const registry::RetiredGeneration& retired) {
  if (!scheduler_) return;
  scheduler_->schedule(tasks::Scheduler::Clock::now() + deadline_, [this, retired] {
    // expired() and never lock(): a reference taken here could be the last one, and dropping it on this
    // thread would run the plugin's destructors here.
    if (retired.generation.expired()) return;
    const std::string reason = "drain deadline of " + std::to_string(deadline_.count()) + " ms passed after " +
                               retired.file.string() + (retired.replaced ? " was replaced" : " was removed") +
                               " (generation " + std::to_string(retired.id) + ", version " + retired.version + ")";
    const size_t asked = router_.cancel_generation(retired.id, reason);
    if (asked == 0) return;
    cancelled_ += asked;
    log::warn("reload: {}: cancelling {} task(s) still running on generation {}", reason, asked, retired.id);
  });
}

}  // namespace taskhost
