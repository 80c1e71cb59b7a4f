// The plugin-call pool on its own: it grows when its threads are blocked inside calls, not when they
// are only waiting for a CPU, and the threads it added end once there is nothing for them to do.
#include "tasks/call_pool.hpp"
#include "tasks/task.hpp"

#include "eventually.hpp"

#include <doctest/doctest.h>

#include <sched.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace taskhost::tasks;
using taskhost::testing::eventually;
using namespace std::chrono_literals;

namespace {

TaskPtr new_task(CallPool& pool, const std::string& id) { return std::make_shared<Task>(id, "test.kind", pool); }

std::chrono::nanoseconds thread_cpu_time() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
}

// Keeps the calling thread, and every thread it starts from now on, on one CPU; restores on exit.
class OnOneCpu {
 public:
  OnOneCpu() {
    REQUIRE(sched_getaffinity(0, sizeof before_, &before_) == 0);
    int cpu = 0;
    while (!CPU_ISSET(cpu, &before_)) ++cpu;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  }
  ~OnOneCpu() { sched_setaffinity(0, sizeof before_, &before_); }
  OnOneCpu(const OnOneCpu&) = delete;
  OnOneCpu& operator=(const OnOneCpu&) = delete;

 private:
  cpu_set_t before_{};
};

}  // namespace

TEST_CASE("a call that blocks makes the pool grow; the added thread ends once idle") {
  CallPool pool(1, 3);
  std::atomic<bool> inside{false}, release{false}, quick_ran{false};
  auto blocker = new_task(pool, "blocker");
  blocker->strand.post(blocker, [&](const TaskPtr&) {
    inside = true;
    while (!release) std::this_thread::sleep_for(1ms);  // asleep in a call, as a blocking plugin is
  });
  REQUIRE(eventually([&] { return inside.load(); }, 5s));
  auto quick = new_task(pool, "quick");
  quick->strand.post(quick, [&](const TaskPtr&) { quick_ran = true; });
  CHECK(eventually([&] { return quick_ran.load(); }, 5s));  // on a thread added for it
  CHECK(pool.threads() == 2);

  release = true;
  CHECK(eventually([&] { return pool.threads() == 1; }, CallPool::kRetireAfter + 5s));
  std::atomic<bool> after{false};
  auto later = new_task(pool, "later");
  later->strand.post(later, [&](const TaskPtr&) { after = true; });
  CHECK(eventually([&] { return after.load(); }, 5s));  // the core thread still serves
  pool.stop();
  CHECK(pool.threads() == 1);
}

// Four busy threads share one CPU with the pool's only thread, which runs calls of 4 ms of CPU each:
// whole check intervals pass with no call finishing, but only because the thread waits for the CPU.
// Another thread would wait for the same CPU, so the pool must not add one. (Before the pool asked the
// scheduler, it grew here to its maximum.)
TEST_CASE("a pool that is only short of CPU does not grow") {
  OnOneCpu pinned;  // the pool's threads and the busy ones inherit it
  CallPool pool(1, 4);
  std::atomic<bool> stop_busy{false};
  std::vector<std::thread> busy;
  for (int i = 0; i < 4; ++i) {
    busy.emplace_back([&] {
      while (!stop_busy.load(std::memory_order_relaxed)) {
      }
    });
  }
  constexpr int kCalls = 60;
  std::atomic<int> done{0};
  std::vector<TaskPtr> tasks;
  for (int i = 0; i < kCalls; ++i) {
    tasks.push_back(new_task(pool, "t" + std::to_string(i)));
    tasks.back()->strand.post(tasks.back(), [&](const TaskPtr&) {
      const auto until = thread_cpu_time() + 4ms;
      while (thread_cpu_time() < until) {
      }
      ++done;
    });
  }
  const bool finished = eventually([&] { return done.load() == kCalls; }, 60s);
  stop_busy = true;
  for (auto& t : busy) t.join();
  CHECK(finished);
  CHECK(pool.threads() == 1);
  pool.stop();
}
