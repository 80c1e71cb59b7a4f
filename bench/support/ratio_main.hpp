// A benchmark main that runs every registered benchmark, then prints the ratios the README reports:
// each "measured / baseline" pair of items-per-second (or time) in the same run, with its goal.
//
// Usage in a bench .cpp:  TASKHOST_BENCH_MAIN({{"BM_host_end_to_end", "BM_bare_decode_and_call", 0.5, true}})
// where `true` means higher items/s is better (ratio = measured/baseline must be >= goal); `false` means
// lower time is better (ratio = measured_time/baseline_time must be <= goal). Time ratios compare CPU time
// unless the goal's fifth field, `real_time`, is true: then wall-clock time per iteration (for a measured
// path that mostly waits on other threads, e.g. a file event travelling to a watcher thread).
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace taskhost::bench {

struct RatioGoal {
  std::string measured;
  std::string baseline;
  double goal;
  bool throughput;  // compare items/s (>= goal) instead of time per iteration (<= goal)
  bool real_time = false;  // time ratios: wall-clock instead of CPU time per iteration
};

class CapturingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    // With --benchmark_repetitions the median aggregate wins over single runs: it is what we report.
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      const bool median = r.run_type == Run::RT_Aggregate && r.aggregate_name == "median";
      if (r.run_type != Run::RT_Iteration && !median) continue;
      const std::string name = base(r.run_name.function_name);
      if (!median && medians_.count(name)) continue;
      if (median) medians_.insert(name);
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) items_per_second[name] = it->second.value;
      // Time ratios compare single-threaded micro benchmarks: CPU time is the steadier measure there.
      // Throughput ratios use items/s, which follows the benchmark's own UseRealTime choice.
      time_per_iteration[name] = r.GetAdjustedCPUTime();
      real_time_per_iteration[name] = r.GetAdjustedRealTime();
    }
    ConsoleReporter::ReportRuns(runs);
  }
  std::map<std::string, double> items_per_second;
  std::map<std::string, double> time_per_iteration;       // CPU time
  std::map<std::string, double> real_time_per_iteration;  // wall-clock time

 private:
  static std::string base(const std::string& name) { return name.substr(0, name.find('/')); }
  std::set<std::string> medians_;
};

inline int run_with_ratios(int argc, char** argv, const std::vector<RatioGoal>& goals) {
  benchmark::Initialize(&argc, argv);
  CapturingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  int missed = 0;
  for (const auto& g : goals) {
    const auto& table = g.throughput  ? reporter.items_per_second
                        : g.real_time ? reporter.real_time_per_iteration
                                      : reporter.time_per_iteration;
    auto m = table.find(g.measured), b = table.find(g.baseline);
    if (m == table.end() || b == table.end() || b->second == 0) continue;  // filtered out of this run
    const double ratio = m->second / b->second;
    const bool ok = g.throughput ? ratio >= g.goal : ratio <= g.goal;
    missed += ok ? 0 : 1;
    std::printf("RATIO %s / %s = %.3f (goal %s %.2f%s) %s\n", g.measured.c_str(), g.baseline.c_str(), ratio,
                g.throughput ? ">=" : "<=", g.goal, g.real_time ? ", wall-clock" : "", ok ? "met" : "MISSED");
  }
  benchmark::Shutdown();
  return 0;  // benchmarks report; they never fail a build or a test run
}

}  // namespace taskhost::bench

#define TASKHOST_BENCH_MAIN(...)                                          \
  int main(int argc, char** argv) {                                       \
    return taskhost::bench::run_with_ratios(argc, argv, __VA_ARGS__);     \
  }
