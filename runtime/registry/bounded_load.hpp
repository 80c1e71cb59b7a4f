// Loading a plugin file without handing the scanning thread to it for good.
//
// A library whose initializers, or a kind whose on_create_executor, never return would otherwise hold the
// thread that scans the plugins directory, and with it every later load, reload and removal of every
// plugin. So each load runs on a thread of its own and the scan waits for it only until a deadline; past
// it, the file fails ("did not finish loading within ...") and the scan goes on.
//
// A load that finishes late is of no use any more: its thread destroys what it made (on_destroy_executor,
// then the library is unmapped) while the BoundedLoader that started it still exists; after that, it
// leaves the generation alone, never unmapped, because the host API its executors hold may be gone. A
// load that never returns keeps its thread until the process exits: running code can be neither
// interrupted nor unmapped.
#pragma once

#include "plugin/loader.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>

namespace taskhost::registry {

class BoundedLoader {
 public:
  // `host` must outlive this loader. A `deadline` of 0 loads on the calling thread, without a limit. Files
  // `isolation` puts in a process of their own are loaded there, their process given the same deadline.
  BoundedLoader(const th_host_api& host, std::chrono::milliseconds deadline, plugin::IsolationPolicy isolation = {});
  ~BoundedLoader();  // late loads finishing from now on leave their generation alone
  BoundedLoader(const BoundedLoader&) = delete;
  BoundedLoader& operator=(const BoundedLoader&) = delete;

  plugin::LoadResult load(const std::filesystem::path& file, uint64_t generation_id);

 private:
  struct Shared {
    std::mutex mu;
    bool owner_alive = true;  // guarded by mu; a late load destroys its generation only while set
  };
  const th_host_api& host_;
  const std::chrono::milliseconds deadline_;
  std::shared_ptr<const plugin::IsolationPolicy> isolation_;  // shared with loads that outlive a deadline
  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

}  // namespace taskhost::registry
