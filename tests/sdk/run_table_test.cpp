// taskhost::RunTable (sdk/run_table.hpp): insert/find/take/release by task ref, from several threads at
// once; every run stopped and then joined exactly once — by release(), release_all() or the destructor —
// with the table's lock never held while a run is stopped or joined. The runs here own real threads
// that end only when stopped, and count what happened to them, so a table that forgets a run, joins it
// twice, joins before stopping or holds its lock across a join fails a check (never hangs: a run's
// thread gives up waiting for its stop after kGiveUp and says so). Also run under ASan and TSan.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <taskhost/sdk.hpp>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr auto kGiveUp = 10s;

// What happened to a set of runs; outlives them.
struct Tally {
  std::atomic<int> stops{0};            // stop requests through stop() or abandon()
  std::atomic<int> joins{0};            // join() calls that ended the thread
  std::atomic<int> unstopped{0};        // threads that waited kGiveUp for a stop that never came
  std::atomic<int> join_unstopped{0};   // join() called before the run was asked to stop
  std::atomic<int> first_join_saw{-1};  // `stops` when the first join() was called
  std::atomic<int> self_joined{0};      // runs destroyed with their thread unjoined: never in a table, or
                                        // forgotten by one (they stop and join themselves then)
};

// A run with a thread that waits until stop() (or abandon()) is called.
class Run {
 public:
  Run(Tally* tally, th_task_ref ref) : tally_(tally), ref_(ref) {
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, kGiveUp, [this] { return stopped_; })) ++tally_->unstopped;
    });
  }
  ~Run() {
    if (!thread_.joinable()) return;
    ++tally_->self_joined;
    request_stop();
    thread_.join();
  }
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  void stop() {
    ++tally_->stops;
    request_stop();
  }
  void abandon() { stop(); }  // a differently named stop member
  void join() {
    int none = -1;
    tally_->first_join_saw.compare_exchange_strong(none, tally_->stops.load());
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopped_) ++tally_->join_unstopped;
    }
    if (!thread_.joinable()) return;
    thread_.join();
    ++tally_->joins;
  }
  th_task_ref ref() const { return ref_; }

 private:
  void request_stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }

  Tally* const tally_;
  const th_task_ref ref_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread thread_;
};

// Runs `fn` on a thread and waits up to `timeout` for it; false if it did not return by then (the thread
// is still joined, after `unblock` was called to let it finish).
template <typename Fn, typename Unblock>
bool returns_within(std::chrono::milliseconds timeout, Fn fn, Unblock unblock) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread t([&] {
    fn();
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  });
  bool in_time = false;
  {
    std::unique_lock<std::mutex> lock(mu);
    in_time = cv.wait_for(lock, timeout, [&] { return done; });
  }
  unblock();
  t.join();
  return in_time;
}

}  // namespace

TEST_CASE("RunTable: insert, find, take and release by ref") {
  Tally tally;
  {
    taskhost::RunTable<Run> table;
    CHECK(table.empty());
    auto a = std::make_shared<Run>(&tally, 1);
    auto b = std::make_shared<Run>(&tally, 2);
    CHECK(table.insert(1, a));
    CHECK(table.insert(2, b));
    CHECK_FALSE(table.insert(1, std::make_shared<Run>(&tally, 1)));  // one run per attempt
    CHECK_FALSE(table.insert(3, nullptr));
    CHECK(table.size() == 2);

    CHECK(table.find(1) == a);
    CHECK(table.find(2) == b);
    CHECK(table.find(3) == nullptr);
    CHECK(table.size() == 2);  // find leaves it in

    CHECK(table.take(1) == a);
    CHECK(table.take(1) == nullptr);
    CHECK(table.find(1) == nullptr);
    CHECK(tally.stops.load() == 0);  // take hands the run over without stopping it
    a->stop();
    a->join();

    CHECK(table.release(2));  // stop, then join
    CHECK(tally.stops.load() == 2);
    CHECK(tally.joins.load() == 2);
    CHECK_FALSE(table.release(2));
    CHECK_FALSE(table.release(99));
    CHECK(table.empty());
  }
  CHECK(tally.unstopped.load() == 0);
  CHECK(tally.join_unstopped.load() == 0);
  CHECK(tally.self_joined.load() == 1);  // the refused duplicate, never the table's
}

TEST_CASE("RunTable: concurrent insert, find, take and release from several threads") {
  constexpr int kThreads = 4;
  constexpr int kOwn = 60;     // refs each thread inserts and ends on its own
  constexpr int kShared = 40;  // refs every thread races to insert, then to take or release
  const auto own_ref = [](int thread, int i) { return static_cast<th_task_ref>(1000 * (thread + 1) + i); };
  Tally tally;
  std::atomic<int> errors{0};
  std::vector<std::atomic<int>> inserted(kShared), ended(kShared);
  std::atomic<int> left_in_table{0};
  {
    taskhost::RunTable<Run> table;
    // All threads wait at each phase boundary, so every insert of a shared ref races every other.
    std::atomic<int> arrived{0};
    const auto barrier = [&](int phase) {
      ++arrived;
      while (arrived.load() < phase * kThreads) std::this_thread::yield();
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        barrier(1);
        for (int i = 0; i < kOwn; ++i) {
          const th_task_ref ref = own_ref(t, i);
          auto run = std::make_shared<Run>(&tally, ref);
          if (!table.insert(ref, run)) ++errors;
          if (table.insert(ref, std::make_shared<Run>(&tally, ref))) ++errors;
          if (table.find(ref) != run) ++errors;
          // Someone else's ref: absent, or theirs.
          const th_task_ref other = own_ref((t + 1) % kThreads, i);
          if (auto found = table.find(other); found && found->ref() != other) ++errors;
          switch (i % 3) {
            case 0: {
              if (table.take(ref) != run) {
                ++errors;
                break;
              }
              run->stop();
              run->join();
              break;
            }
            case 1:
              if (!table.release(ref)) ++errors;
              if (table.find(ref) != nullptr) ++errors;
              break;
            default:
              ++left_in_table;  // for the destructor
              break;
          }
        }
        barrier(2);
        for (int k = 0; k < kShared; ++k) {
          const th_task_ref ref = static_cast<th_task_ref>(k + 1);
          if (table.insert(ref, std::make_shared<Run>(&tally, ref))) ++inserted[k];
        }
        barrier(3);
        for (int k = 0; k < kShared; ++k) {
          const th_task_ref ref = static_cast<th_task_ref>(k + 1);
          if (k % 2 == 0) {
            if (auto taken = table.take(ref)) {
              ++ended[k];
              taken->stop();
              taken->join();
            }
          } else if (table.release(ref)) {
            ++ended[k];
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(errors.load() == 0);
    for (int k = 0; k < kShared; ++k) {
      CAPTURE(k);
      CHECK(inserted[k].load() == 1);  // exactly one thread's insert won
      CHECK(ended[k].load() == 1);     // exactly one thread got it out
    }
    CHECK(table.size() == static_cast<size_t>(left_in_table.load()));
  }
  // Every run that got into the table was stopped and joined exactly once; the refused ones were never
  // stopped through the table and stopped themselves when destroyed.
  const int accepted = kThreads * kOwn + kShared;
  CHECK(tally.stops.load() == accepted);
  CHECK(tally.joins.load() == accepted);
  CHECK(tally.self_joined.load() == kThreads * kOwn + kShared * (kThreads - 1));  // the refused ones
  CHECK(tally.unstopped.load() == 0);
  CHECK(tally.join_unstopped.load() == 0);
}

TEST_CASE("RunTable: destroying it stops every run first, then joins each, even runs still held elsewhere") {
  constexpr int kRuns = 8;
  Tally tally;
  std::shared_ptr<Run> held;
  {
    taskhost::RunTable<Run> table;
    for (th_task_ref ref = 1; ref <= th_task_ref{kRuns}; ++ref)
      REQUIRE(table.insert(ref, std::make_shared<Run>(&tally, ref)));
    held = table.find(3);
  }
  CHECK(tally.stops.load() == kRuns);
  CHECK(tally.first_join_saw.load() == kRuns);  // every run was asked to stop before the first join
  CHECK(tally.joins.load() == kRuns);           // including the one still held: its thread is gone
  CHECK(tally.join_unstopped.load() == 0);
  CHECK(tally.unstopped.load() == 0);
  held.reset();
  CHECK(tally.self_joined.load() == 0);
}

TEST_CASE("RunTable: release_all empties the table; another stop member, or none, may be named") {
  Tally tally;
  {
    taskhost::RunTable<Run> table{&Run::abandon};
    REQUIRE(table.insert(1, std::make_shared<Run>(&tally, 1)));
    REQUIRE(table.insert(2, std::make_shared<Run>(&tally, 2)));
    table.release_all();
    CHECK(table.empty());
    CHECK(tally.stops.load() == 2);
    CHECK(tally.joins.load() == 2);
    REQUIRE(table.insert(1, std::make_shared<Run>(&tally, 1)));  // usable again
    CHECK(table.release(1));
  }
  CHECK(tally.stops.load() == 3);
  CHECK(tally.joins.load() == 3);

  // No stop member: join() alone, for runs that stop themselves. This one's thread ends on its own.
  struct SelfStopping {
    std::thread thread{[] {}};
    void join() { thread.join(); }
  };
  auto run = std::make_shared<SelfStopping>();
  {
    taskhost::RunTable<SelfStopping> table{nullptr};
    REQUIRE(table.insert(7, run));
  }
  CHECK_FALSE(run->thread.joinable());
  CHECK(tally.self_joined.load() == 0);
  CHECK(tally.join_unstopped.load() == 0);
}

TEST_CASE("RunTable: a stop that throws does not escape, and every run is still joined") {
  struct Throwing {
    explicit Throwing(Tally* t) : run(t, 0) {}
    void stop() {
      run.stop();
      throw std::runtime_error("stop exploded");
    }
    void join() { run.join(); }
    Run run;
  };
  Tally tally;
  {
    taskhost::RunTable<Throwing> table;
    for (th_task_ref ref = 1; ref <= 3; ++ref) REQUIRE(table.insert(ref, std::make_shared<Throwing>(&tally)));
    CHECK(table.release(2));  // noexcept: a throw here would terminate
  }
  CHECK(tally.stops.load() == 3);
  CHECK(tally.joins.load() == 3);
  CHECK(tally.self_joined.load() == 0);
}

TEST_CASE("RunTable: a release waiting in join() does not hold up calls for other tasks") {
  // A run whose thread, once stopped, still waits for `gate`: its join() blocks until the gate opens.
  struct Slow {
    Slow(std::mutex* mu, std::condition_variable* cv, const bool* gate)
        : thread([mu, cv, gate, this] {
            std::unique_lock<std::mutex> lock(*mu);
            cv->wait(lock, [&] { return stopped && *gate; });
          }),
          mu_(mu),
          cv_(cv) {}
    void stop() {
      std::lock_guard<std::mutex> lock(*mu_);
      stopped = true;
      cv_->notify_all();
    }
    void join() { thread.join(); }
    bool stopped = false;  // guarded by *mu_
    std::thread thread;
    std::mutex* mu_;
    std::condition_variable* cv_;
  };
  std::mutex mu;
  std::condition_variable cv;
  bool gate = false;
  const auto open_gate = [&] {
    std::lock_guard<std::mutex> lock(mu);
    gate = true;
    cv.notify_all();
  };

  taskhost::RunTable<Slow> table;
  const auto first = std::make_shared<Slow>(&mu, &cv, &gate);
  REQUIRE(table.insert(1, first));
  std::thread releaser([&] { CHECK(table.release(1)); });
  // Wait until the releaser has stopped the run (without asking the table: its lock may be what is held).
  bool stopped = false;
  {
    std::unique_lock<std::mutex> lock(mu);
    stopped = cv.wait_for(lock, 5s, [&] { return first->stopped; });
  }
  if (!stopped) {
    FAIL_CHECK("release() never stopped the run");
    first->stop();
    open_gate();
    releaser.join();
    return;
  }
  std::this_thread::sleep_for(20ms);  // let it get into join()
  const bool in_time = returns_within(
      5s,
      [&] {
        auto other = std::make_shared<Slow>(&mu, &cv, &gate);
        CHECK(table.insert(2, other));
        CHECK(table.find(2) == other);
        CHECK(table.take(2) == other);
        other->stop();
        open_gate();  // its thread needs the gate as well
        other->join();
      },
      open_gate);
  CHECK_MESSAGE(in_time, "calls for another task waited for a join in release()");
  releaser.join();
  CHECK(table.find(1) == nullptr);
  CHECK(table.empty());
}
