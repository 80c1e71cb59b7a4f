// The drain deadline of retired generations: a generation that stopped taking new tasks (its file was
// replaced or removed) keeps running the tasks it started, but only until `deadline`; then whatever still
// runs on it is cancelled (cooperatively; the router's cancel deadline ends a task that ignores it).
//
// The drainer never keeps a generation alive: it holds weak references and generation ids only, so the
// old generation is still released the moment its last task ends, deadline or not.
//
// Thread rule: track() is safe from any thread. Deadlines fire on the drainer's own timer thread, which
// never calls plugin code (Router::cancel_generation only posts to the tasks' strands).
#pragma once

#include "registry/kind_registry.hpp"
#include "tasks/router.hpp"
#include "tasks/scheduler.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

namespace taskhost {

class GenerationDrainer {
 public:
  // `deadline` 0 means no deadline: retired generations drain for as long as their tasks run (no timer
  // thread is started). `router` must outlive the drainer.
  GenerationDrainer(tasks::Router& router, std::chrono::milliseconds deadline);
  ~GenerationDrainer();  // stop()
  GenerationDrainer(const GenerationDrainer&) = delete;
  GenerationDrainer& operator=(const GenerationDrainer&) = delete;

  // Starts the deadline of a generation that just stopped taking new tasks.
  void track(const registry::RetiredGeneration& retired);

  // Drops every pending deadline; nothing is cancelled after this returns. Idempotent.
  void stop();

  // Tasks this drainer asked to cancel so far, for tests and metrics.
  uint64_t cancelled() const { return cancelled_.load(); }

 private:
  tasks::Router& router_;
  const std::chrono::milliseconds deadline_;
  std::unique_ptr<tasks::Scheduler> scheduler_;  // null without a deadline
  std::atomic<uint64_t> cancelled_{0};
};

}  // namespace taskhost
