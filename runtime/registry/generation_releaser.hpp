// Where a plugin generation is destroyed: on a thread of its own, never where its last reference drops.
//
// Destroying a generation runs plugin code (each kind's on_destroy_executor, which may join the plugin's
// threads and take as long as it likes) and then dlclose. The last reference may drop on the thread that
// scans the plugins directory (a replaced or removed file with no task left), on a pool thread (the last
// task of a draining generation), or anywhere a status copy was held; a slow destroy there held up every
// later load, reload and removal, or a pool thread. Generations this releaser adopted are instead queued
// to its thread when their last reference drops, and destroyed there in order.
//
// stop() destroys what is queued and joins the thread; a generation released after that is destroyed
// where its reference drops, as before (the host then tears down its registry on its own thread).
//
// Thread rule: adopt() and the deleters it installs are safe from any thread; stop() from a host thread
// that holds no adopted generation's last reference.
#pragma once

#include "plugin/generation.hpp"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace taskhost::registry {

class GenerationReleaser : public std::enable_shared_from_this<GenerationReleaser> {
 public:
  static std::shared_ptr<GenerationReleaser> make() { return std::shared_ptr<GenerationReleaser>(new GenerationReleaser); }
  ~GenerationReleaser() { stop(); }
  GenerationReleaser(const GenerationReleaser&) = delete;
  GenerationReleaser& operator=(const GenerationReleaser&) = delete;

  // Shares `generation` with a deleter that hands it to this releaser's thread.
  std::shared_ptr<const plugin::Generation> adopt(std::unique_ptr<plugin::Generation> generation);

  // Destroys everything queued, then ends the thread. Idempotent.
  void stop();

 private:
  GenerationReleaser() = default;
  void release(const plugin::Generation* generation);  // the last reference dropped
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<const plugin::Generation*> queue_;  // guarded by mu_
  bool stopping_ = false;                         // guarded by mu_
  std::thread thread_;                            // started by the first release
};

}  // namespace taskhost::registry
