#include "registry/bounded_load.hpp"

#include "common/crash_report.hpp"
#include "common/log.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace taskhost::registry {

namespace {

plugin::LoadResult load_as(const plugin::IsolationPolicy& isolation, const std::filesystem::path& file,
                           uint64_t generation_id, const th_host_api& host) {
  if (isolation.of(file) == plugin::Isolation::process) {
    return plugin::load_isolated_generation(file, generation_id, host, plugin::HostTable::scoped, isolation.process);
  }
  plugin::LoadResult loaded =
      plugin::load_generation(file, generation_id, host, plugin::HostTable::scoped, &isolation.refused_in_process);
  // A plugin (or a runtime it embeds) may have set its own fatal signal handlers while loading: the host's
  // come back, or a crash of any plugin would go unnoted from now on (common/crash_report.hpp).
  for (const int sig : crash_report::reclaim()) {
    log::warn("plugins: {} replaced the host's {} handler while loading; the host's is back", file.string(),
              crash_report::signal_name(sig));
  }
  return loaded;
}

std::shared_ptr<const plugin::IsolationPolicy> with_deadline(plugin::IsolationPolicy isolation,
                                                             std::chrono::milliseconds deadline) {
  // A little under the loader's own deadline, so that a plugin process that does not finish loading is
  // killed, and its file fails with that reason, before the loader gives up with a vaguer one.
  isolation.process.load_timeout =
      deadline.count() > 0 ? deadline - std::min<std::chrono::milliseconds>(deadline / 10, std::chrono::seconds(1))
                           : deadline;
  return std::make_shared<const plugin::IsolationPolicy>(std::move(isolation));
}

}  // namespace

BoundedLoader::BoundedLoader(const th_host_api& host, std::chrono::milliseconds deadline,
                             plugin::IsolationPolicy isolation)
    : host_(host), deadline_(deadline), isolation_(with_deadline(std::move(isolation), deadline)) {}

BoundedLoader::~BoundedLoader() {
  std::lock_guard lock(shared_->mu);  // waits for a late load's destruction in progress
  shared_->owner_alive = false;
}

plugin::LoadResult BoundedLoader::load(const std::filesystem::path& file, uint64_t generation_id) {
  if (deadline_.count() <= 0) {
    const crash_report::AltStack alt_stack;  // the calling thread's, unless it has one already
    return load_as(*isolation_, file, generation_id, host_);
  }
  struct Load {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;       // guarded by mu
    bool abandoned = false;  // guarded by mu: the scan stopped waiting
    plugin::LoadResult result;
  };
  auto load = std::make_shared<Load>();
  std::thread worker;
  try {
    worker = std::thread([load, shared = shared_, isolation = isolation_, file, generation_id, host = &host_] {
      const crash_report::AltStack alt_stack;  // a load's stack overflow is noted too (crash_report.hpp)
      plugin::LoadResult result = load_as(*isolation, file, generation_id, *host);
      std::unique_lock lock(load->mu);
      if (!load->abandoned) {
        load->result = std::move(result);
        load->done = true;
        load->cv.notify_all();
        return;
      }
      lock.unlock();
      if (!result.generation) return;
      std::lock_guard owner(shared->mu);
      if (shared->owner_alive) {
        log::warn("plugins: {} finished loading after the scan gave up on it; unloaded again", file.string());
        result.generation.reset();
      } else {
        // See bounded_load.hpp: its host API may be gone. Kept reachable, for leak checkers' sake.
        static std::mutex kept_mu;
        static auto* kept = new std::vector<std::unique_ptr<plugin::Generation>>();
        std::lock_guard keep(kept_mu);
        kept->push_back(std::move(result.generation));
      }
    });
  } catch (const std::system_error&) {
    return load_as(*isolation_, file, generation_id, host_);  // no thread to spare: load here
  }
  std::unique_lock lock(load->mu);
  if (load->cv.wait_for(lock, deadline_, [&] { return load->done; })) {
    lock.unlock();
    worker.join();
    return std::move(load->result);
  }
  load->abandoned = true;
  lock.unlock();
  worker.detach();
  plugin::LoadResult failed;
  failed.error = fmt::format(
      "{}: did not finish loading within {} ms (a library initializer or a kind's on_create_executor that does "
      "not return?); not loaded, and not retried until the file changes or an operator reloads",
      file.string(), deadline_.count());
  return failed;
}

}  // namespace taskhost::registry
