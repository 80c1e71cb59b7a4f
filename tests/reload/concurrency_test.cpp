// Concurrency: plugin worker threads inside and around sink calls (progress and checkpoints in a tight
// loop) while the plugin file is replaced over and over — renamed over and copied over in place, while
// the old copies are still mapped and running. Runs in the main build and under ASan+UBSan and TSan,
// where a race or a use-after-unload is a failure.
#include "alternating_probe.hpp"

using namespace taskhost;
using namespace taskhost::testing;

namespace {

constexpr int kReplacements = kSanitized ? 12 : 24;
constexpr int kHammersPerGeneration = 1;

}  // namespace

TEST_CASE("plugin threads hammering the sink survive the file being replaced under them, again and again") {
  AlternatingProbe probe(256, 5s);
  ReloadRig& rig = probe.rig;

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
    const uint64_t gen = probe.replace(round, round % 3 == 0 ? Arrival::copy_over : Arrival::rename_over);
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
    CHECK(probe.version_of(c.generation()) == c.plugin_version());
    CHECK(output_field(c, "version") == c.plugin_version());
    CHECK(std::stoll(output_field(c, "done")) > 0);
  }
  MESSAGE("sink calls counted: " << rig.outbox.counted_events() << " progress events over "
                                 << probe.generations() << " generations");
  // Once their tasks ended, every old generation is released and (dlclose permitting) unmapped.
  CHECK(eventually([&] { return rig.status()->draining.empty(); }));
  CHECK(eventually([&] { return open_memfds("reload-probe") == 1; }));
}
