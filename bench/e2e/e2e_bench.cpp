// Local end-to-end throughput: serialized assignments through the real host (router, strands, sink,
// events, completion) against a bare loop that does only the unavoidable work for the same task —
// decode the assignment, encode the input for the kind, call the plugin's start, decode its output.
// Goal: host >= 0.5x the bare loop's tasks/s. Both use the same fixture .so in the same run.
#include "ratio_main.hpp"

#include "common/spin_wait.hpp"
#include "host/host.hpp"
#include "plugin/loader.hpp"
#include "tasks/payload.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace taskhost;

namespace {

constexpr int kBatch = 2000;

std::vector<std::string> serialized_assignments(const std::string& prefix) {
  std::vector<std::string> out;
  out.reserve(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    v1::TaskAssignment a;
    a.set_task_id(prefix + std::to_string(i));
    a.mutable_execute()->set_component_id("test.instant");
    a.mutable_execute()->set_attempt(1);
    // {"name":"Ada","n":i}, built directly: protobuf's JSON parser would dominate a profile of this bench.
    auto& fields = *a.mutable_execute()->mutable_input()->mutable_struct_value()->mutable_fields();
    fields["name"].set_string_value("Ada");
    fields["n"].set_number_value(i);
    out.push_back(a.SerializeAsString());
  }
  return out;
}

// Counts completions; publishes nothing else (the transport's cost is not the router's).
class CountingOutbox : public transport::TaskOutbox {
 public:
  void on_event(const v1::TaskEvent&) override {}
  void on_heartbeat(const v1::Heartbeat&) override {}
  void on_checkpoint(const std::string&, uint32_t, std::string_view) override {}
  void on_completion(const v1::TaskCompletion&) override {
    if (++done_ >= target_) {
      std::lock_guard lock(mu_);
      cv_.notify_all();
    }
  }
  void expect(int n) { target_ = done_.load() + n; }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_.load() >= target_.load(); });
  }

 private:
  std::atomic<int> done_{0}, target_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

// CPU time of the whole process (every thread), in microseconds. Reported per task next to the
// wall-clock rate: on a shared 2-core machine the rate swings with scheduling luck, the work per task
// much less, so a change that removes work shows here even when the rate is noise.
double process_cpu_us() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto us = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_usec); };
  return us(u.ru_utime) + us(u.ru_stime);
}

// The fixture plugin alone in a directory of this run's own, removed at exit (every Host of the run
// has been destroyed by then: each lives inside one benchmark function).
fs::path plugins_dir() {
  struct Dir {
    fs::path path = fs::temp_directory_path() / ("taskhost-bench-e2e-" + std::to_string(::getpid()));
    Dir() {
      fs::create_directories(path);
      fs::copy_file(fs::path(TASKHOST_FIXTURE_DIR) / "scripted-v1.so", path / "scripted.so",
                    fs::copy_options::overwrite_existing);
    }
    ~Dir() {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  };
  static const Dir dir;
  return dir.path;
}

// Runs kBatch serialized assignments per iteration through a real Host; `submit` decodes and hands
// them to the router its way.
template <typename Submit>
void run_host(benchmark::State& state, Submit&& submit) {
  CountingOutbox outbox;
  HostOptions options;
  options.plugins_dir = plugins_dir();
  options.router.max_active = 4096;
  options.router.finished_memory = 1024;
  Host host(options, outbox);
  int round = 0;
  double cpu_us = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const auto batch = serialized_assignments("r" + std::to_string(round++) + "-");
    outbox.expect(kBatch);
    state.ResumeTiming();
    const double cpu0 = process_cpu_us();
    submit(host.router(), batch);
    outbox.wait();
    cpu_us += process_cpu_us() - cpu0;
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["cpu_us_per_task"] = cpu_us / static_cast<double>(state.iterations() * kBatch);
}

// One assignment at a time, as the embedded transport submits them.
void BM_host_end_to_end(benchmark::State& state) {
  run_host(state, [](tasks::Router& router, const std::vector<std::string>& batch) {
    for (const auto& bytes : batch) {
      v1::TaskAssignment a;
      a.ParseFromString(bytes);
      router.assign(a);
    }
  });
}

// The same tasks handed over the way a pulling transport receives them: in batches (NATS delivers one
// pull's worth at a time), each admitted with one Router::assign_batch call.
void BM_host_end_to_end_batched(benchmark::State& state) {
  constexpr size_t kChunk = 64;
  std::vector<v1::TaskAssignment> chunk(kChunk);
  run_host(state, [&](tasks::Router& router, const std::vector<std::string>& batch) {
    for (size_t i = 0; i < batch.size(); i += kChunk) {
      const size_t n = std::min(kChunk, batch.size() - i);
      for (size_t j = 0; j < n; ++j) chunk[j].ParseFromString(batch[i + j]);
      router.assign_batch(std::span<const v1::TaskAssignment>(chunk.data(), n));
    }
  });
}

// The floor: the same decode, the same input encoding, one call into the same plugin, and decoding its
// output — with a sink that does nothing but capture the result.
struct BareSink {
  static th_status complete(th_host_context* ctx, th_task_ref, const th_result* r) {
    auto* out = reinterpret_cast<google::protobuf::Value*>(ctx);
    std::string err;
    tasks::decode_value({r->output.data, r->output.size}, TH_ENCODING_JSON, out, &err);
    return TH_OK;
  }
};

void BM_bare_decode_and_call(benchmark::State& state) {
  google::protobuf::Value output;
  th_host_api api{};
  api.struct_size = sizeof(api);
  api.abi_major = TASKHOST_ABI_MAJOR;
  api.abi_minor = TASKHOST_ABI_MINOR;
  api.context = reinterpret_cast<th_host_context*>(&output);
  api.complete = BareSink::complete;
  auto loaded = plugin::load_generation(plugins_dir() / "scripted.so", 1, api);
  if (!loaded.generation) {
    state.SkipWithError(loaded.error.c_str());
    return;
  }
  const plugin::KindExecutor* executor = loaded.generation->find("test.instant");
  const auto batch = serialized_assignments("b-");
  const double cpu0 = process_cpu_us();
  for (auto _ : state) {
    for (const auto& bytes : batch) {
      v1::TaskAssignment a;
      a.ParseFromString(bytes);
      const std::string input = tasks::encode_value(a.execute().input(), executor->encoding());
      plugin::TaskCall call;
      call.task = 1;
      call.task_id = a.task_id().c_str();
      call.kind = a.execute().component_id().c_str();
      call.attempt = a.execute().attempt();
      call.input = {reinterpret_cast<const uint8_t*>(input.data()), input.size()};
      benchmark::DoNotOptimize(executor->start(call));
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["cpu_us_per_task"] = (process_cpu_us() - cpu0) / static_cast<double>(state.iterations() * kBatch);
}

// Not a goal: the machine's price of one cache-line round trip between two CPUs, measured in the same run
// so that a run's ratio can be read against it. The host hands each task from the submitting thread to
// a pool thread, the bare loop stays on one; on the shared development VM this round trip moves between
// ~190 and ~500 ns for minutes at a time, and the host's CPU per task moves with it (README).
void BM_inter_core_round_trip(benchmark::State& state) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < 2) {
    state.SkipWithError("needs two CPUs");
    return;
  }
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
    if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  auto pin = [](int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
  };
  alignas(64) std::atomic<uint64_t> ball{0};  // odd: with the echo thread; even: back here
  std::thread echo([&] {
    pin(cpus[1]);
    for (uint64_t seen = 0;;) {
      uint64_t v;
      while ((v = ball.load(std::memory_order_acquire)) == seen || v % 2 == 0) cpu_relax();
      if (v == UINT64_MAX) return;
      ball.store(v + 1, std::memory_order_release);
      seen = v + 1;
    }
  });
  cpu_set_t before;
  pthread_getaffinity_np(pthread_self(), sizeof(before), &before);
  pin(cpus[0]);
  uint64_t v = 0;
  for (auto _ : state) {
    ball.store(v + 1, std::memory_order_release);
    while (ball.load(std::memory_order_acquire) != v + 2) cpu_relax();
    v += 2;
  }
  ball.store(UINT64_MAX, std::memory_order_release);
  echo.join();
  pthread_setaffinity_np(pthread_self(), sizeof(before), &before);
}

}  // namespace

BENCHMARK(BM_inter_core_round_trip)->Unit(benchmark::kNanosecond)->UseRealTime();
BENCHMARK(BM_bare_decode_and_call)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_host_end_to_end)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_host_end_to_end_batched)->Unit(benchmark::kMillisecond)->UseRealTime();

TASKHOST_BENCH_MAIN({{"BM_host_end_to_end", "BM_bare_decode_and_call", 0.5, true},
                     {"BM_host_end_to_end_batched", "BM_bare_decode_and_call", 0.5, true}})
