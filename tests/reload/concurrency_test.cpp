// Concurrency: plugin worker threads inside and around sink calls (progress and checkpoints in a tight
// loop) while the plugin file is replaced over and over — renamed over and copied over in place, while
// the old copies are still mapped and running. Runs in the main build and under ASan+UBSan and TSan,
// where a race or a use-after-unload is a failure.
#include "reload_rig.hpp"

#include <set>

using namespace taskhost;
using namespace taskhost::testing;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

constexpr int kReplacements = kSanitized ? 12 : 24;
constexpr int kHammersPerGeneration = 1;

}  // namespace

TEST_CASE("plugin threads hammering the sink survive the file being replaced under them, again and again") {
  tasks::RouterOptions router;
  router.max_active = 256;
  router.cancel_deadline = 5s;
  ReloadRig::Options o;
  o.router = router;
  ReloadRig rig(o);

  std::map<uint64_t, std::string> version_of;  // every generation that served, by id
  version_of[rig.generation()] = "A";
  std::vector<std::string> hammers;
  const auto start_hammers = [&](int round) {
    for (int i = 0; i < kHammersPerGeneration; ++i) {
      const std::string id = "hammer-" + std::to_string(round) + "-" + std::to_string(i);
      // Steps with no pause: the worker lives in progress/checkpoint calls until told to finish.
      REQUIRE(rig.router().assign(assignment(id, "probe.long", "[1000000000,0]")).accepted());
      REQUIRE(rig.outbox.wait_state(id, v1::RUNNING));
      hammers.push_back(id);
    }
  };
  start_hammers(0);

  for (int round = 1; round <= kReplacements; ++round) {
    const bool to_b = round % 2 == 1;
    const fs::path build = to_b ? probe_b() : probe_a();
    if (round % 3 == 0) {
      copy_over(build, rig.path("probe.so"));  // in place, same inode, while older copies run
    } else {
      install_plugin_file(build, rig.dir.path(), "probe.so");
    }
    const uint64_t gen = rig.wait_version(to_b ? "B" : "A");
    REQUIRE_MESSAGE(gen != 0, "round " << round);
    version_of[gen] = to_b ? "B" : "A";
    auto quick = rig.run_short("quick-" + std::to_string(round));
    REQUIRE(quick);
    CHECK(quick->generation() == gen);
    CHECK(output_field(*quick, "version") == quick->plugin_version());
    start_hammers(round);
  }

  // Every hammer is still running on the generation that started it; tell them all to finish.
  for (const auto& id : hammers) rig.router().deliver(message(id, "finish"), [](const v1::DeliveryReceipt&) {});
  REQUIRE(rig.router().wait_idle(60s));
  const auto completions = rig.outbox.completions();
  for (const auto& id : hammers) {
    CAPTURE(id);
    const auto it = completions.find(id);
    REQUIRE(it != completions.end());
    REQUIRE(it->second.size() == 1);
    const v1::TaskCompletion& c = it->second.front();
    CHECK(c.state() == v1::SUCCEEDED);
    CHECK(c.generation() == started_generation(rig.outbox.events_of(id), 1));
    CHECK(version_of[c.generation()] == c.plugin_version());
    CHECK(output_field(c, "version") == c.plugin_version());
    CHECK(std::stoll(output_field(c, "done")) > 0);
  }
  MESSAGE("sink calls counted: " << rig.outbox.counted_events() << " progress events over "
                                 << version_of.size() << " generations");
  // Once their tasks ended, every old generation is released and (dlclose permitting) unmapped.
  CHECK(eventually([&] { return rig.status()->draining.empty(); }));
  CHECK(eventually([&] { return open_memfds("reload-probe") == 1; }));
}
