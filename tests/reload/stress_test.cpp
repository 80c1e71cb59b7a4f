// The hot-reload stress test (issue 4's "done when"): tasks run continuously — short and long, with
// steering and cancels — while the watched .so is replaced 100 times, alternating two builds that report
// their version in their output, by every way a file arrives (rename over, cp over in place, symlink
// re-pointed). Then: no task lost, none failed (cancelled ones are counted apart), every result names the
// generation that started it and that generation's version, and every task submitted after the watcher
// reported a switch ran on that generation or a newer one. Runs in the main build and under TSan and
// ASan+UBSan.
#include "alternating_probe.hpp"

#include <mutex>
#include <set>
#include <random>

using namespace taskhost;
using namespace taskhost::testing;

namespace {

constexpr int kReplacements = 100;
// How long each generation serves before the next replacement: long enough for tasks to start on it,
// short enough that long tasks span several switches.
constexpr auto kServeTime = kSanitized ? 40ms : 25ms;

struct Submitted {
  std::string id;
  bool is_long = false;
  bool steered = false;
  bool cancelled = false;
  uint64_t generation_at_submit = 0;  // the generation the watcher had switched to before the assign
};

}  // namespace

TEST_CASE("100 replacements under continuous load: nothing lost, nothing failed, every result on its generation") {
  AlternatingProbe probe(512, 10s);
  ReloadRig& rig = probe.rig;

  std::mutex mu;
  std::vector<Submitted> submitted;
  std::atomic<uint64_t> epoch{rig.generation()};
  std::atomic<bool> stop{false};

  // Two submitters: one of short tasks, one of long tasks that are steered and some cancelled.
  std::thread shorts([&] {
    for (int i = 0; !stop; ++i) {
      Submitted s{"s" + std::to_string(i), false, false, false, epoch.load()};
      const auto out = rig.router().assign(assignment(s.id, "probe.short", std::to_string(i)));
      CHECK_MESSAGE(out.accepted(), out.message);
      {
        std::lock_guard lock(mu);
        submitted.push_back(s);
      }
      std::this_thread::sleep_for(1ms);
    }
  });
  std::thread longs([&] {
    std::mt19937 rng(7);
    for (int i = 0; !stop; ++i) {
      Submitted s{"l" + std::to_string(i), true, i % 2 == 0, i % 5 == 0, epoch.load()};
      const int steps = 5 + static_cast<int>(rng() % 40);
      const std::string input = "[" + std::to_string(steps) + "," + std::to_string(1 + rng() % 3) + "]";
      const auto out = rig.router().assign(assignment(s.id, "probe.long", input));
      CHECK_MESSAGE(out.accepted(), out.message);
      if (s.steered) rig.router().deliver(message(s.id, "ping"), [](const v1::DeliveryReceipt&) {});
      if (s.cancelled) rig.router().cancel(cancel_request(s.id), [](const v1::DeliveryReceipt&) {});
      {
        std::lock_guard lock(mu);
        submitted.push_back(s);
      }
      std::this_thread::sleep_for(2ms);
    }
  });

  const auto began = std::chrono::steady_clock::now();
  for (int round = 1; round <= kReplacements; ++round) {
    // Symlink, rename, then copy over what the rename left (a file, not the symlink).
    constexpr Arrival kArrivals[] = {Arrival::copy_over, Arrival::symlink, Arrival::rename_over};
    // From here on, a new assignment must run on this generation or a newer one.
    epoch = probe.replace(round, kArrivals[round % 3]);
    std::this_thread::sleep_for(kServeTime);
  }
  const auto switching = std::chrono::steady_clock::now() - began;
  stop = true;
  shorts.join();
  longs.join();
  REQUIRE(rig.router().wait_idle(60s));

  const auto completions = rig.outbox.completions();
  size_t succeeded = 0, canceled = 0, failed = 0, lost = 0, long_tasks = 0, echoes = 0, switched_gens = 0;
  std::set<uint64_t> generations_used;
  for (const Submitted& s : submitted) {
    CAPTURE(s.id);
    const auto it = completions.find(s.id);
    if (it == completions.end()) {
      ++lost;
      continue;
    }
    REQUIRE(it->second.size() == 1);
    const v1::TaskCompletion& c = it->second.front();
    long_tasks += s.is_long;
    if (c.state() == v1::CANCELED) {
      ++canceled;
      CHECK(s.cancelled);  // only what we asked to cancel ends canceled
    } else if (c.state() == v1::SUCCEEDED) {
      ++succeeded;
      CHECK(output_field(c, "version") == c.plugin_version());
    } else {
      ++failed;
      FAIL_CHECK("task failed: " << c.error().message());
      continue;
    }
    const auto events = rig.outbox.events_of(s.id);
    if (c.generation() == 0) {
      CHECK(s.cancelled);  // cancelled before it started: it never ran on any generation
      continue;
    }
    CHECK(c.attempt() == 1);
    CHECK(c.generation() == started_generation(events, 1));
    CHECK(c.generation() >= s.generation_at_submit);
    generations_used.insert(c.generation());
    const std::string version = probe.version_of(c.generation());
    REQUIRE_MESSAGE(!version.empty(), "generation " << c.generation() << " was never reported by the watcher");
    CHECK(version == c.plugin_version());
    for (const auto& e : events) {
      if (e.has_message() && e.message().text().starts_with("echo:")) {
        ++echoes;
        CHECK(e.message().text() == "echo:" + c.plugin_version() + ":ping");
      }
    }
  }
  switched_gens = probe.generations();
  CHECK(lost == 0);
  CHECK(failed == 0);
  CHECK(canceled > 0);
  CHECK(echoes > 0);
  CHECK(generations_used.size() > kReplacements / 2);
  MESSAGE(submitted.size() << " tasks (" << long_tasks << " long) over " << kReplacements << " replacements in "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(switching).count() << " ms: "
                           << succeeded << " succeeded, " << canceled << " canceled, " << failed << " failed, "
                           << lost << " lost; " << echoes << " steering echoes; " << generations_used.size()
                           << " of " << switched_gens << " generations ran tasks");
  CHECK(eventually([&] { return rig.status()->draining.empty(); }));
  CHECK(eventually([&] { return open_memfds("reload-probe") == 1; }));
}
