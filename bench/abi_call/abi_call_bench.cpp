// What crossing the C ABI costs per call. Both benchmarks do the same unit of work (a relaxed atomic
// increment of a per-executor counter, given the same TaskCall) and return a CallResult; they differ only
// in how the work is reached:
//   BM_direct_virtual_call  a C++ virtual call into an object in this binary (the in-process ideal);
//   BM_c_abi_shim_call      KindExecutor::reconcile on a plugin loaded by load_generation from its private
//                           memfd copy: the shim builds th_task_info and a host-owned error buffer, calls
//                           through a function pointer into the .so, and copies the error text out.
// The difference is the shim's price per call.
//
// BM_isolated_call (information, no goal): a call into the same plugin run with isolation = "process", a
// frame to taskhost-plugin-child and its answer back: what isolating a plugin costs a call. It calls
// start (which this kind refuses, with an error text to copy back), not reconcile: a plugin process
// forwards calls only for tasks it runs, and this kind runs none.
#include "plugin/loader.hpp"
#include "ratio_main.hpp"

#include <benchmark/benchmark.h>

#include <atomic>
#include <dlfcn.h>
#include <memory>
#include <string>

namespace {

using taskhost::plugin::CallResult;
using taskhost::plugin::TaskCall;

// The direct counterpart of the plugin's executor.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual CallResult reconcile(const TaskCall& task) = 0;
};

class CountingExecutor final : public Executor {
 public:
  CallResult reconcile(const TaskCall& task) override {
    benchmark::DoNotOptimize(task.task);
    counter_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }

 private:
  std::atomic<unsigned long> counter_{0};
};

// Hidden behind a non-inlined factory so the compiler cannot devirtualize the call.
[[gnu::noinline]] std::unique_ptr<Executor> make_direct() { return std::make_unique<CountingExecutor>(); }

TaskCall bench_task() {
  TaskCall task;
  task.task = 42;
  task.task_id = "bench-task";
  task.kind = "bench.abi_call";
  return task;
}

// A host table whose functions are never reached by this kind: reconcile calls no sink function.
const th_host_api& quiet_host() {
  static const th_host_api api = [] {
    th_host_api a{};
    a.struct_size = sizeof(a);
    a.abi_major = TASKHOST_ABI_MAJOR;
    a.abi_minor = TASKHOST_ABI_MINOR;
    return a;
  }();
  return api;
}

void BM_direct_virtual_call(benchmark::State& state) {
  const std::unique_ptr<Executor> executor = make_direct();
  const TaskCall task = bench_task();
  for (auto _ : state) {
    CallResult result = executor->reconcile(task);
    benchmark::DoNotOptimize(result);
  }
}

void BM_c_abi_shim_call(benchmark::State& state) {
  taskhost::plugin::LoadResult loaded = taskhost::plugin::load_generation(TASKHOST_BENCH_PLUGIN, 1, quiet_host());
  if (!loaded.generation) {
    state.SkipWithError(loaded.error.c_str());
    return;
  }
  const taskhost::plugin::KindExecutor* executor = loaded.generation->find("bench.abi_call");
  const TaskCall task = bench_task();
  for (auto _ : state) {
    CallResult result = executor->reconcile(task);
    benchmark::DoNotOptimize(result);
  }
}

void BM_isolated_call(benchmark::State& state) {
  taskhost::plugin::isolated::ProcessOptions options;
  options.program = TASKHOST_PLUGIN_CHILD;
  taskhost::plugin::LoadResult loaded = taskhost::plugin::load_isolated_generation(
      TASKHOST_BENCH_PLUGIN, 1, quiet_host(), taskhost::plugin::HostTable::shared, options);
  if (!loaded.generation) {
    state.SkipWithError(loaded.error.c_str());
    return;
  }
  const taskhost::plugin::KindExecutor* executor = loaded.generation->find("bench.abi_call");
  const TaskCall task = bench_task();
  for (auto _ : state) {
    CallResult result = executor->start(task);
    benchmark::DoNotOptimize(result);
  }
}

// The floor under the shim: the plugin's own function pointer called with a prebuilt th_task_info, as a
// host with no C++ layer at all would. Opened with plain dlopen so nothing of ours is in between.
void BM_raw_c_function_pointer(benchmark::State& state) {
  void* handle = dlopen(TASKHOST_BENCH_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    state.SkipWithError(dlerror());
    return;
  }
  auto entry = reinterpret_cast<th_plugin_entry_fn>(dlsym(handle, TASKHOST_ENTRY_SYMBOL));
  const th_kind_descriptor* kind = entry()->kinds[0];
  th_executor* executor = nullptr;
  kind->on_create_executor(&quiet_host(), &executor, nullptr);
  th_task_info info{};
  info.struct_size = sizeof(info);
  info.task = 42;
  info.task_id = "bench-task";
  info.kind = "bench.abi_call";
  char text[512];
  th_error_buf err{sizeof(err), text, sizeof(text)};
  for (auto _ : state) {
    text[0] = '\0';
    benchmark::DoNotOptimize(kind->on_reconcile(executor, &info, &err));
  }
  kind->on_destroy_executor(executor);
  dlclose(handle);
}

}  // namespace

BENCHMARK(BM_raw_c_function_pointer);
BENCHMARK(BM_direct_virtual_call);
BENCHMARK(BM_c_abi_shim_call);
BENCHMARK(BM_isolated_call)->UseRealTime();  // the work happens in another process
TASKHOST_BENCH_MAIN({{"BM_c_abi_shim_call", "BM_direct_virtual_call", 1.5, false}})
