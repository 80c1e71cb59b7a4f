// Concurrency: many tasks whose plugin threads hammer the sink while steering, cancels and generation
// switches arrive from other threads. Runs in the main build and under ASan+UBSan and TSan, where a race
// or a use-after-unload is a failure.
#include "host_fixture.hpp"

#include "tasks/lifecycle.hpp"

#include <atomic>
#include <set>
#include <thread>

using namespace taskhost;
using namespace taskhost::testing;
using namespace std::chrono_literals;

namespace {
constexpr int kThreadTasks = 400;
constexpr int kHoldTasks = 100;
}  // namespace

TEST_CASE("every task reaches exactly one completion under concurrent sink calls, steering and cancels") {
  tasks::RouterOptions o;
  o.max_active = 48;
  o.cancel_deadline = 2s;
  HostFixture f(o);

  // Thread tasks arrive in batches (as from a NATS pull), racing single assignments and retirements.
  std::thread submit_threads([&] {
    constexpr int kBatch = 40;  // more than one admission group (16)
    for (int i = 0; i < kThreadTasks; i += kBatch) {
      std::vector<v1::TaskAssignment> batch;
      for (int j = i; j < std::min(i + kBatch, kThreadTasks); ++j) {
        batch.push_back(assignment("th" + std::to_string(j), "test.thread", std::to_string(1 + j % 7)));
      }
      for (const auto& out : f.router().assign_batch(batch)) REQUIRE(out.accepted());
    }
  });
  std::thread submit_holds([&] {
    for (int i = 0; i < kHoldTasks; ++i) {
      REQUIRE(f.router().assign(assignment("ho" + std::to_string(i), "test.hold")).accepted());
    }
  });
  submit_threads.join();
  submit_holds.join();

  // Steer, finish or cancel every hold task from two threads at once, racing the plugin. A cancel is
  // never refused: one that races a task's start is queued behind it.
  std::atomic<int> refused_cancels{0};
  auto on_cancel = [&](const v1::DeliveryReceipt& r) {
    if (r.outcome() == v1::DeliveryReceipt::REJECTED) refused_cancels++;
  };
  auto driver = [&](int parity) {
    for (int i = parity; i < kHoldTasks; i += 2) {
      const std::string id = "ho" + std::to_string(i);
      f.router().deliver(message(id, "hello"), [](const v1::DeliveryReceipt&) {});
      if (i % 3 == 0) {
        f.router().cancel(cancel_request(id), on_cancel);
      } else {
        f.router().deliver(message(id, "finish"), [](const v1::DeliveryReceipt&) {});
      }
      f.router().cancel(cancel_request(id), on_cancel);  // usually TASK_ENDED
    }
  };
  // Pending hold tasks only take steering once started; keep driving until all are done.
  for (int round = 0; round < 200 && !f.router().wait_idle(50ms); ++round) {
    std::thread a(driver, 0), b(driver, 1);
    a.join();
    b.join();
  }
  REQUIRE(f.router().wait_idle(30s));
  CHECK(refused_cancels == 0);

  std::map<std::string, int> per_task;
  for (const auto& c : f.outbox.completions()) per_task[c.task_id()]++;
  CHECK(per_task.size() == static_cast<size_t>(kThreadTasks + kHoldTasks));
  for (const auto& [id, n] : per_task) CHECK_MESSAGE(n == 1, id);
  for (const auto& c : f.outbox.completions()) {
    if (c.task_id().rfind("th", 0) == 0) CHECK(c.state() == v1::SUCCEEDED);
  }
  // Per task, events arrive in order: PENDING first, sequence numbers strictly increasing, the terminal
  // state last (a RUNNING or a completion overtaking PENDING was a real bug once).
  std::map<std::string, std::vector<v1::TaskEvent>> by_task;
  for (const auto& e : f.outbox.events()) by_task[e.task_id()].push_back(e);
  for (const auto& [id, events] : by_task) {
    std::vector<v1::TaskState> states;
    uint64_t seq = 0;
    for (const auto& e : events) {
      CHECK_MESSAGE(e.seq() > seq, id);
      seq = e.seq();
      if (e.has_state()) states.push_back(e.state().state());
    }
    REQUIRE_MESSAGE(!states.empty(), id);
    CHECK_MESSAGE(states.front() == v1::PENDING, id);
    CHECK_MESSAGE(tasks::is_terminal(states.back()), id);
  }
}

TEST_CASE("generations switch under load and old ones are released only after their last task") {
  tasks::RouterOptions o;
  o.max_active = 32;
  HostFixture f(o);
  std::atomic<bool> stop{false};
  std::atomic<int> submitted{0};
  std::thread producer([&] {
    for (int i = 0; !stop; ++i) {
      REQUIRE(f.router().assign(assignment("g" + std::to_string(i), i % 2 ? "test.thread" : "test.instant", "3")).accepted());
      submitted++;
      if (i % 16 == 0) std::this_thread::sleep_for(1ms);
    }
  });
  for (int swap = 0; swap < 20; ++swap) {
    install_plugin_file(fixture(swap % 2 ? "scripted-v1.so" : "scripted-v2.so"), f.dir.path(), "scripted.so");
    auto report = f.host->plugins().scan();
    CHECK(report.errors.empty());
    std::this_thread::sleep_for(20ms);
  }
  stop = true;
  producer.join();
  REQUIRE(f.router().wait_idle(30s));
  auto completions = f.outbox.completions();
  CHECK(completions.size() == static_cast<size_t>(submitted.load()));
  for (const auto& c : completions) {
    CHECK_MESSAGE(c.state() == v1::SUCCEEDED, c.task_id() << ": " << c.error().message());
    CHECK((c.plugin_version() == "1.0.0" || c.plugin_version() == "2.0.0"));
  }
}
