// Hot reload latency. BM_rename_to_first_task: a real Host watches a plugins directory; each iteration
// renames the other build of the probe plugin over probe.so, waits for the registry to switch, then runs
// one task and waits for its completion from the new generation — the time an operator's `mv` takes to
// reach work. BM_plain_load: load_generation of the same two builds (read, hash, inspect, dlopen,
// validate, factories; the previous generation released), the least any reload can cost. Both alternate
// the same .so files, in the same run, wall-clock. Goal: rename-to-first-task <= 2x plain load.
#include "ratio_main.hpp"

#include "host/host.hpp"
#include "plugin/loader.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>

namespace fs = std::filesystem;
using namespace taskhost;

namespace {

const fs::path kBuilds[2] = {fs::path(TASKHOST_FIXTURE_DIR) / "reload-probe-a.so",
                             fs::path(TASKHOST_FIXTURE_DIR) / "reload-probe-b.so"};
const char* const kVersions[2] = {"A", "B"};

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("taskhost-bench-reload-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Remembers the last completion; a waiter wakes when the one it expects arrives.
class CompletionOutbox : public transport::TaskOutbox {
 public:
  void on_event(const v1::TaskEvent&) override {}
  void on_heartbeat(const v1::Heartbeat&) override {}
  void on_checkpoint(const std::string&, uint32_t, std::string_view) override {}
  void on_completion(const v1::TaskCompletion& c) override {
    {
      std::lock_guard lock(mu_);
      last_ = c;
    }
    cv_.notify_all();
  }
  v1::TaskCompletion wait(const std::string& id) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return last_.task_id() == id; });
    return last_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  v1::TaskCompletion last_;
};

// The version now serving probe.short, as the registry announces switches.
class SwitchSignal {
 public:
  void on_switch(const std::string& kind, const registry::Binding& now) {
    if (kind != "probe.short" || !now) return;
    {
      std::lock_guard lock(mu_);
      version_ = now.generation->version();
    }
    cv_.notify_all();
  }
  void wait_for(const std::string& version) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return version_ == version; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string version_;
};

v1::TaskAssignment short_task(const std::string& id) {
  v1::TaskAssignment a;
  a.set_task_id(id);
  a.mutable_execute()->set_component_id("probe.short");
  a.mutable_execute()->set_attempt(1);
  a.mutable_execute()->mutable_input()->set_number_value(1);
  return a;
}

void BM_rename_to_first_task(benchmark::State& state) {
  const fs::path dir = fresh_dir("watched");
  fs::copy_file(kBuilds[0], dir / "probe.so");
  CompletionOutbox outbox;
  SwitchSignal signal;
  {
    HostOptions options;
    options.plugins_dir = dir;
    options.watch = true;
    Host host(options, outbox);
    host.registry().on_switch([&](const std::string& kind, const registry::Binding& now) { signal.on_switch(kind, now); });
    int n = 0;
    double to_switch_us = 0;  // rename -> registry switched, of the whole measured time
    for (auto _ : state) {
      state.PauseTiming();
      const int build = (n + 1) % 2;  // A serves first: the first rename brings B
      const std::string id = "t" + std::to_string(n++);
      fs::copy_file(kBuilds[build], dir / ".probe.so.tmp", fs::copy_options::overwrite_existing);
      state.ResumeTiming();

      const auto renamed = std::chrono::steady_clock::now();
      fs::rename(dir / ".probe.so.tmp", dir / "probe.so");
      signal.wait_for(kVersions[build]);
      to_switch_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - renamed).count();
      host.router().assign(short_task(id));
      const v1::TaskCompletion c = outbox.wait(id);
      if (c.plugin_version() != kVersions[build]) {
        state.SkipWithError("the first task after the switch ran on the old version");
        break;
      }
    }
    state.counters["switch_us"] = benchmark::Counter(to_switch_us / std::max(1, n));
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_rename_to_first_task)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_plain_load(benchmark::State& state) {
  const fs::path dir = fresh_dir("plain");
  const fs::path files[2] = {dir / "a.so", dir / "b.so"};
  fs::copy_file(kBuilds[0], files[0]);
  fs::copy_file(kBuilds[1], files[1]);
  CompletionOutbox outbox;
  {
    HostOptions options;
    options.plugins_dir = dir / "empty";  // the host only lends its sink table
    Host host(options, outbox);
    std::unique_ptr<plugin::Generation> previous;
    uint64_t id = 1;
    for (auto _ : state) {
      const int build = static_cast<int>(id % 2);
      plugin::LoadResult result = plugin::load_generation(files[build], id++, host.router().host_api());
      if (!result.generation) {
        state.SkipWithError(result.error.c_str());
        break;
      }
      previous = std::move(result.generation);  // releases the one before, as a switch does
    }
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_plain_load)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

TASKHOST_BENCH_MAIN({{"BM_rename_to_first_task", "BM_plain_load", 2.0, false, true}})
