// Where a plugin generation is destroyed: on a thread of its own, never where its last reference drops.
//
// Destroying a generation runs plugin code (each kind's on_destroy_executor, which may join the plugin's
// threads and take as long as it likes) and then dlclose. The last reference may drop on the thread that
// scans the plugins directory (a replaced or removed file with no task left), on a pool thread (the last
// task of a draining generation), or anywhere a status copy was held; a slow destroy there held up every
// later load, reload and removal, or a pool thread. Generations this releaser adopted are instead handed,
// when their last reference drops, to a destroying thread of their own: a destroy that never returns
// keeps its generation (and one thread), and holds up no other generation's unloading. Generations are
// released a few per reload, so a thread each costs nothing that matters; finished threads are joined
// at the next release and by stop().
//
// stop() waits for every destroy under way and joins; a generation released after that is destroyed
// where its reference drops, as before (the host then tears down its registry on its own thread).
//
// Thread rule: adopt() and the deleters it installs are safe from any thread; stop() from a host thread
// that holds no adopted generation's last reference.
#pragma once

#include "plugin/generation.hpp"

#include <atomic>
#include <list>
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

  // Shares `generation` with a deleter that hands it to a destroying thread of its own.
  std::shared_ptr<const plugin::Generation> adopt(std::unique_ptr<plugin::Generation> generation);

  // Waits for every destroy under way, then joins their threads. Idempotent.
  void stop();

 private:
  GenerationReleaser() = default;
  void release(const plugin::Generation* generation);  // the last reference dropped
  void join_finished_locked();                          // mu_ held

  struct Destroyer {
    std::thread thread;
    std::atomic<bool> done{false};  // its destroy returned; the thread touches nothing after setting it
  };
  std::mutex mu_;
  std::list<Destroyer> destroyers_;  // guarded by mu_; a list: each thread keeps its own entry's address
  bool stopping_ = false;            // guarded by mu_
};

}  // namespace taskhost::registry
