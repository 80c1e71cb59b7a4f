#include "tasks/scheduler.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

using namespace taskhost::tasks;
using namespace std::chrono_literals;

TEST_CASE("the scheduler fires entries in deadline order from many threads") {
  Scheduler s;
  std::mutex mu;
  std::vector<int> fired;
  // Far enough ahead that every entry is scheduled before the first is due, even under TSan on a loaded
  // machine (at 50 ms, entries scheduled after their deadline fired in arrival order).
  const auto base = Scheduler::Clock::now() + 1s;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const int key = i * 4 + t;
        s.schedule(base + std::chrono::milliseconds(key), [&, key] {
          std::lock_guard lock(mu);
          fired.push_back(key);
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(Scheduler::Clock::now() < base);  // the premise: nothing was due while entries were added
  for (int i = 0; i < 300 && [&] { std::lock_guard lock(mu); return fired.size(); }() < 100; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  std::lock_guard lock(mu);
  REQUIRE(fired.size() == 100);
  for (size_t i = 0; i < fired.size(); ++i) CHECK(fired[i] == static_cast<int>(i));
}

TEST_CASE("an earlier deadline scheduled later still fires first; stop drops the rest") {
  Scheduler s;
  std::atomic<int> order{0};
  std::atomic<int> late{-1}, early{-1};
  s.schedule(Scheduler::Clock::now() + 300ms, [&] { late = order++; });
  s.schedule(Scheduler::Clock::now() + 20ms, [&] { early = order++; });
  std::this_thread::sleep_for(500ms);
  CHECK(early == 0);
  CHECK(late == 1);
  std::atomic<bool> never{false};
  s.schedule(Scheduler::Clock::now() + 10s, [&] { never = true; });
  s.stop();
  CHECK_FALSE(never);
}
