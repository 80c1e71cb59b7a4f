// Generations across a reload: when an old generation is released, the drain deadline, moving
// re-attachable tasks, and the operator's Host::reload() — all through a real Host and real .so files.
#include "reload_rig.hpp"

#include <cstdlib>

using namespace taskhost;
using namespace taskhost::testing;

namespace {

// Points the probe fixture's lifetime log at a file for the scope (set before the Host loads anything).
class ProbeLog {
 public:
  explicit ProbeLog(const fs::path& file) : file_(file) { ::setenv("RELOAD_PROBE_LOG", file.c_str(), 1); }
  ~ProbeLog() { ::unsetenv("RELOAD_PROBE_LOG"); }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    std::ifstream in(file_);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }
  // Index of the first line starting with `prefix`, or -1.
  int find(const std::string& prefix) const {
    const auto all = lines();
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i].starts_with(prefix)) return static_cast<int>(i);
    }
    return -1;
  }

 private:
  fs::path file_;
};

}  // namespace

TEST_CASE("the old generation is destroyed only after its last task ended, and its memfd is closed then") {
  TempDir logs;
  ProbeLog log(logs.path() / "probe.log");
  ReloadRig rig;
  const uint64_t gen_a = rig.generation();
  REQUIRE(rig.router().assign(assignment("long", "probe.long", "[100000,5]")).accepted());
  REQUIRE(rig.outbox.wait_state("long", v1::RUNNING));
  CHECK(open_memfds("reload-probe") == 1);

  install_plugin_file(probe_b(), rig.dir.path(), "probe.so");
  REQUIRE(rig.wait_version("B") != 0);
  CHECK(rig.run_short("on-b")->plugin_version() == "B");
  // A is still needed by its running task: not destroyed, still mapped.
  std::this_thread::sleep_for(200ms);
  CHECK(log.find("destroy A") == -1);
  CHECK(open_memfds("reload-probe") == 2);
  CHECK(rig.status()->draining.at(0).id == gen_a);

  rig.router().deliver(message("long", "finish"));
  auto done = rig.outbox.wait_completion("long");
  REQUIRE(done);
  CHECK(done->plugin_version() == "A");
  REQUIRE(eventually([&] { return log.find("destroy A probe.long") >= 0 && log.find("destroy A probe.short") >= 0; }));
  const int released = log.find("release A probe.long long live=0");
  REQUIRE(released >= 0);
  CHECK(released < log.find("destroy A probe.long"));
  CHECK(log.find("destroy A probe.long live=0") >= 0);
  CHECK(log.find("destroy A probe.short live=0") >= 0);
  CHECK(log.find("destroy B") == -1);
  CHECK(eventually([&] { return open_memfds("reload-probe") == 1; }));  // only B's copy is left
  CHECK(rig.status()->draining.empty());
}

TEST_CASE("after the drain deadline the old generation's remaining tasks are cancelled; finished ones are not") {
  ReloadRig::Options o;
  o.drain_deadline = 800ms;
  ReloadRig rig(o);
  const uint64_t gen_a = rig.generation();
  REQUIRE(rig.router().assign(assignment("endless", "probe.long", "[100000,5]")).accepted());
  REQUIRE(rig.router().assign(assignment("brief", "probe.long", "[5,10]")).accepted());
  REQUIRE(rig.outbox.wait_state("endless", v1::RUNNING));
  REQUIRE(rig.outbox.wait_state("brief", v1::RUNNING));

  const auto switched_at = std::chrono::steady_clock::now();
  install_plugin_file(probe_b(), rig.dir.path(), "probe.so");
  REQUIRE(rig.wait_version("B") != 0);

  auto brief = rig.outbox.wait_completion("brief");
  REQUIRE(brief);
  CHECK(brief->state() == v1::SUCCEEDED);
  auto endless = rig.outbox.wait_completion("endless");
  REQUIRE(endless);
  CHECK(std::chrono::steady_clock::now() - switched_at >= 800ms);
  CHECK(endless->state() == v1::CANCELED);
  CHECK(endless->generation() == gen_a);
  CHECK(endless->plugin_version() == "A");
  bool told_why = false;
  for (const auto& e : rig.outbox.events_of("endless")) {
    told_why = told_why || (e.has_state() && e.state().detail().starts_with("cancel requested: drain deadline of 800 ms "
                                                                             "passed after " + rig.path("probe.so").string()));
  }
  CHECK(told_why);
  // Counted by the drainer after its cancel call returned, which may be after the task already ended.
  CHECK(eventually([&] { return rig.host->drain_cancellations() == 1; }));
  CHECK(eventually([&] { return rig.status()->draining.empty(); }));

  // New work runs on B and is untouched by A's deadline.
  REQUIRE(rig.router().assign(assignment("on-b", "probe.long", "[60,10]")).accepted());
  auto on_b = rig.outbox.wait_completion("on-b");
  REQUIRE(on_b);
  CHECK(on_b->state() == v1::SUCCEEDED);
  CHECK(on_b->plugin_version() == "B");
  CHECK(rig.host->drain_cancellations() == 1);
}

TEST_CASE("reload(migrate) moves re-attachable tasks to the new generation: attempt + 1, from the checkpoint") {
  ReloadRig::Options o;
  o.watch = false;
  ReloadRig rig(o);
  const uint64_t gen_a = rig.generation();
  REQUIRE(rig.router().assign(assignment("mover", "probe.long", "[100000,5]")).accepted());
  REQUIRE(eventually([&] { return std::atoi(rig.outbox.checkpoint("mover").c_str()) >= 3; }));

  install_plugin_file(probe_b(), rig.dir.path(), "probe.so");
  const registry::ScanReport report = rig.host->reload(true);
  CHECK(report.loaded == std::vector<fs::path>{rig.path("probe.so")});
  REQUIRE(report.retired.size() == 1);
  CHECK(report.retired[0].id == gen_a);
  CHECK(report.retired[0].replaced);
  const uint64_t gen_b = rig.generation();

  auto resumed = rig.outbox.wait_message("mover", "resumed:B:from=");
  REQUIRE(resumed);
  const int from = std::atoi(resumed->substr(std::string("resumed:B:from=").size()).c_str());
  CHECK(from >= 3);
  CHECK(resumed->ends_with(":attempt=2"));
  auto snap = rig.router().snapshot("mover");
  REQUIRE(snap);
  CHECK(snap->attempt == 2);
  CHECK(snap->generation == gen_b);

  rig.router().deliver(message("mover", "finish"));
  auto done = rig.outbox.wait_completion("mover");
  REQUIRE(done);
  CHECK(done->state() == v1::SUCCEEDED);
  CHECK(done->attempt() == 2);
  CHECK(done->generation() == gen_b);
  CHECK(done->plugin_version() == "B");
  CHECK(output_field(*done, "version") == "B");
  CHECK(output_field(*done, "resumed_from") == std::to_string(from));
  CHECK(eventually([&] { return rig.status()->draining.empty(); }));  // nothing kept A alive
}

TEST_CASE("migrate_on_reload moves tasks on every switch the watcher makes; a short task is untouched") {
  ReloadRig::Options o;
  o.migrate_on_reload = true;
  ReloadRig rig(o);
  REQUIRE(rig.router().assign(assignment("mover", "probe.long", "[100000,5]")).accepted());
  REQUIRE(eventually([&] { return !rig.outbox.checkpoint("mover").empty(); }));
  install_plugin_file(probe_b(), rig.dir.path(), "probe.so");
  REQUIRE(rig.wait_version("B") != 0);
  REQUIRE(rig.outbox.wait_message("mover", "resumed:B:from="));
  CHECK(rig.router().snapshot("mover")->plugin_version == "B");
  rig.router().cancel(cancel_request("mover"));
  auto done = rig.outbox.wait_completion("mover");
  REQUIRE(done);
  CHECK(done->state() == v1::CANCELED);  // cancel is honoured promptly by the new code
  CHECK(done->plugin_version() == "B");
  CHECK(done->attempt() == 2);
}

TEST_CASE("Host::reload without a watcher: switches only when asked, reports what changed, retries failures") {
  ReloadRig::Options o;
  o.watch = false;
  ReloadRig rig(o);
  CHECK(rig.host->watcher() == nullptr);
  const uint64_t gen_a = rig.generation();

  install_plugin_file(probe_b(), rig.dir.path(), "probe.so");
  std::this_thread::sleep_for(300ms);
  CHECK(rig.generation() == gen_a);  // nobody is watching

  registry::ScanReport report = rig.host->reload();
  CHECK(report.loaded == std::vector<fs::path>{rig.path("probe.so")});
  CHECK(report.errors.empty());
  CHECK(rig.version() == "B");
  CHECK(rig.run_short("b")->plugin_version() == "B");

  report = rig.host->reload();
  CHECK_FALSE(report.changed());
  CHECK(report.errors.empty());

  // An operator's reload tries a failing file again (the factory might fail for a passing reason) and
  // reports it each time; B keeps serving.
  install_plugin_file(probe_broken(), rig.dir.path(), "probe.so");
  for (int i = 0; i < 2; ++i) {
    report = rig.host->reload();
    REQUIRE(report.errors.size() == 1);
    CHECK(report.errors[0].find("probe factory refuses") != std::string::npos);
    CHECK(rig.version() == "B");
  }
}

TEST_CASE("one reload installs two files that trade kinds; the plugins view shows each file's generations") {
  ReloadRig::Options o;
  o.watch = false;
  ReloadRig rig(o, {{swap_1(), "a.so"}, {swap_2(), "b.so"}});
  const uint64_t a1 = rig.generation("a.so");
  REQUIRE(rig.router().assign(assignment("held", "swap.k1.long", "[100000,5]")).accepted());
  REQUIRE(rig.outbox.wait_state("held", v1::RUNNING));

  fs::copy_file(swap_2(), rig.path("a.so"), fs::copy_options::overwrite_existing);
  fs::copy_file(swap_1(), rig.path("b.so"), fs::copy_options::overwrite_existing);
  const registry::ScanReport report = rig.host->reload();
  CHECK(report.errors.empty());
  CHECK(report.loaded == std::vector<fs::path>{rig.path("a.so"), rig.path("b.so")});
  CHECK(rig.host->registry().resolve("swap.k1").generation->source() == rig.path("b.so"));
  CHECK(rig.host->registry().resolve("swap.k2").generation->source() == rig.path("a.so"));

  const auto a = rig.status("a.so");
  REQUIRE(a);
  CHECK(a->state == "serving");
  CHECK(a->kinds == std::vector<std::string>{"swap.k2", "swap.k2.long"});
  REQUIRE(a->current);
  CHECK(a->current->plugin == "swap-two");
  CHECK(a->current->active_tasks == 0);
  REQUIRE(a->draining.size() == 1);
  CHECK(a->draining[0].id == a1);
  CHECK(a->draining[0].plugin == "swap-one");
  CHECK(a->draining[0].active_tasks == 1);  // "held" still runs on a.so's first generation

  // The held task ran swap.k1 on a.so's old generation; it ends there.
  rig.router().deliver(message("held", "finish"));
  auto held = rig.outbox.wait_completion("held");
  REQUIRE(held);
  CHECK(held->generation() == a1);
  CHECK(eventually([&] { return rig.status("a.so")->draining.empty(); }));
}

TEST_CASE("a refused file keeps its old generation, and what that one serves is checked again") {
  ReloadRig::Options o;
  o.watch = false;
  ReloadRig rig(o, {{swap_1(), "a.so"}, {swap_2(), "b.so"}});
  const uint64_t a1 = rig.generation("a.so"), b1 = rig.generation("b.so");

  // a.so moves to K2 (which b.so keeps serving) and a new c.so claims K1. a.so loses to b.so, so a.so
  // keeps K1 — and then c.so loses to a.so. Nothing changes, and both say why.
  fs::copy_file(swap_2(), rig.path("a.so"), fs::copy_options::overwrite_existing);
  fs::copy_file(swap_1(), rig.path("c.so"));
  const registry::ScanReport report = rig.host->reload();
  CHECK(report.loaded.empty());
  CHECK(report.retired.empty());
  CHECK(report.errors == std::vector<std::string>{
                             rig.path("a.so").string() + ": kind 'swap.k2' is already served by " + rig.path("b.so").string(),
                             rig.path("c.so").string() + ": kind 'swap.k1' is already served by " + rig.path("a.so").string()});
  CHECK(rig.generation("a.so") == a1);
  CHECK(rig.generation("b.so") == b1);
  CHECK(rig.current("c.so") == nullptr);
  CHECK(rig.status("c.so")->state == "failed");
  CHECK(rig.run_short("k1", "swap.k1")->generation() == a1);

  // b.so leaves: a.so's K2 build is free to serve, which frees K1 for c.so — all in the next reload.
  fs::remove(rig.path("b.so"));
  const registry::ScanReport second = rig.host->reload();
  CHECK(second.errors.empty());
  CHECK(second.removed == std::vector<fs::path>{rig.path("b.so")});
  CHECK(second.loaded == std::vector<fs::path>{rig.path("a.so"), rig.path("c.so")});
  CHECK(rig.host->registry().resolve("swap.k1").generation->source() == rig.path("c.so"));
  CHECK(rig.host->registry().resolve("swap.k2").generation->source() == rig.path("a.so"));
}
