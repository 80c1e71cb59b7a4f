// The directory watcher with a real Host: every way a plugin file arrives in, changes in or leaves the
// watched directory, and what new and running tasks see each time.
#include "reload_rig.hpp"

#include "plugin/sha256.hpp"

using namespace taskhost;
using namespace taskhost::testing;

namespace {

bool rejected_naming(ReloadRig& rig, const std::string& id, const std::string& kind) {
  const auto out = rig.router().assign(assignment(id, kind, "1"));
  return out.result == tasks::AssignOutcome::Result::rejected && out.code == v1::COMPONENT_NOT_FOUND &&
         out.message.find("'" + kind + "'") != std::string::npos;
}

}  // namespace

TEST_CASE("a plugin renamed into the watched directory serves; a rename over it switches new tasks only") {
  ReloadRig rig({}, {});  // empty directory
  CHECK(rejected_naming(rig, "none", "probe.short"));

  install_plugin_file(probe_a(), rig.dir.path(), "probe.so");
  const uint64_t gen_a = rig.wait_version("A");
  REQUIRE(gen_a != 0);
  auto first = rig.run_short("s1");
  REQUIRE(first);
  CHECK(first->plugin_version() == "A");
  CHECK(output_field(*first, "version") == "A");
  CHECK(first->generation() == gen_a);

  // A long task started on A stays on A across the switch.
  REQUIRE(rig.router().assign(assignment("long", "probe.long", "[100000,5]")).accepted());
  REQUIRE(rig.outbox.wait_state("long", v1::RUNNING));
  install_plugin_file(probe_b(), rig.dir.path(), "probe.so");
  const uint64_t gen_b = rig.wait_version("B");
  REQUIRE(gen_b > gen_a);
  auto second = rig.run_short("s2");
  REQUIRE(second);
  CHECK(second->plugin_version() == "B");
  CHECK(output_field(*second, "version") == "B");
  CHECK(second->generation() == gen_b);

  const auto status = rig.status();
  REQUIRE(status);
  CHECK(status->state == "serving");
  REQUIRE(status->current);
  CHECK(status->current->version == "B");
  REQUIRE(status->draining.size() == 1);
  CHECK(status->draining[0].id == gen_a);
  CHECK(status->draining[0].active_tasks == 1);

  rig.router().deliver(message("long", "hello"));
  CHECK(rig.outbox.wait_message("long", "echo:A:hello"));  // steering still reaches the A code
  rig.router().deliver(message("long", "finish"));
  auto done = rig.outbox.wait_completion("long");
  REQUIRE(done);
  CHECK(done->state() == v1::SUCCEEDED);
  CHECK(done->plugin_version() == "A");
  CHECK(output_field(*done, "version") == "A");
  CHECK(done->generation() == gen_a);
  CHECK(eventually([&] { return rig.status()->draining.empty(); }));
  CHECK(rig.host->watcher()->stats().scans >= 2);
}

TEST_CASE("a plugin renamed within the directory moves in one switch: its new name is never refused for its own kinds") {
  ReloadRig::Options o;
  o.settle = 2s;  // far longer than the move takes: the old name must not wait it out holding its kinds
  ReloadRig rig(o);
  REQUIRE(rig.generation() != 0);
  fs::rename(rig.path("probe.so"), rig.path("renamed.so"));
  REQUIRE(rig.wait_version("A", "renamed.so") != 0);
  CHECK(rig.generation() == 0);  // the old name left in the same switch
  const auto failures = rig.host->reload_stats().load_failures;
  CHECK(failures.find(rig.path("renamed.so").string()) == failures.end());
  auto done = rig.run_short("after-rename");
  REQUIRE(done);
  CHECK(done->state() == v1::SUCCEEDED);
}

TEST_CASE("cp over a serving file with a pause mid-write: the half file never serves, the whole one does") {
  for (const bool close_between : {true, false}) {
    CAPTURE(close_between);
    ReloadRig::Options o;
    o.settle = 300ms;
    ReloadRig rig(o);
    const uint64_t gen_a = rig.generation();
    REQUIRE(gen_a != 0);
    const std::string bytes = read_all(probe_b());
    const std::string first_half = bytes.substr(0, bytes.size() / 2);
    const fs::path file = rig.path("probe.so");

    // Same inode, truncated, half written, then a pause longer than the settle time. Either the writer
    // closes the file (IN_CLOSE_WRITE of a half file) or keeps it open (only IN_MODIFY).
    const int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, first_half.data(), first_half.size()) == static_cast<ssize_t>(first_half.size()));
    const auto written = std::chrono::steady_clock::now();
    if (close_between) ::close(fd);
    // Not judged while it may still be written: no error for a third of the settle time (checked only
    // if this thread was not itself held up past the settle time)...
    std::this_thread::sleep_for(100ms);
    const std::string early_error = rig.status()->last_error;
    if (std::chrono::steady_clock::now() - written < o.settle) CHECK(early_error.empty());
    // ...then the half image held still past the settle time: its error is on record and A still serves.
    REQUIRE(eventually([&] { return !rig.status()->last_error.empty(); }));
    CHECK(rig.generation() == gen_a);
    const auto during = rig.status();
    REQUIRE(during);
    CHECK(during->state == "serving");
    CHECK_MESSAGE(during->last_error.starts_with(file.string() + ": "), during->last_error);
    auto served = rig.run_short("during");
    REQUIRE(served);
    CHECK(served->plugin_version() == "A");

    const std::string rest = bytes.substr(first_half.size());
    if (close_between) {
      append_bytes(file, rest, false);
    } else {
      REQUIRE(::write(fd, rest.data(), rest.size()) == static_cast<ssize_t>(rest.size()));
      ::close(fd);
    }
    REQUIRE(rig.wait_version("B") != 0);
    CHECK(rig.current()->content_hash() == plugin::sha256_hex(bytes));
    CHECK(rig.status()->last_error.empty());
    auto after = rig.run_short("after");
    REQUIRE(after);
    CHECK(after->plugin_version() == "B");
    CHECK(output_field(*after, "version") == "B");
  }
}

TEST_CASE("deleting a plugin stops new tasks of its kinds, naming the kind; running ones finish") {
  ReloadRig rig;
  const uint64_t gen_a = rig.generation();
  REQUIRE(rig.router().assign(assignment("long", "probe.long", "[100000,5]")).accepted());
  REQUIRE(rig.outbox.wait_state("long", v1::RUNNING));

  fs::remove(rig.path("probe.so"));
  REQUIRE(eventually([&] { return rig.status()->state == "draining"; }));
  CHECK(rejected_naming(rig, "after-delete", "probe.short"));
  CHECK(rejected_naming(rig, "after-delete-long", "probe.long"));
  const auto c = rig.outbox.wait_completion("after-delete");
  REQUIRE(c);
  CHECK(c->error().code() == v1::COMPONENT_NOT_FOUND);
  CHECK(c->error().message().find("probe.short") != std::string::npos);
  CHECK(rig.status()->draining.at(0).active_tasks == 1);
  CHECK(rig.status()->kinds == std::vector<std::string>{"probe.short", "probe.long"});

  rig.router().deliver(message("long", "finish"));
  auto done = rig.outbox.wait_completion("long");
  REQUIRE(done);
  CHECK(done->state() == v1::SUCCEEDED);
  CHECK(done->generation() == gen_a);
  CHECK(output_field(*done, "version") == "A");
  CHECK(eventually([&] { return rig.status()->state == "removed"; }));
}

TEST_CASE("a delete followed by a copy within the settle time is one replacement, never an outage") {
  ReloadRig::Options o;
  o.settle = 300ms;
  ReloadRig rig(o);
  std::atomic<int> unbound{0};
  rig.host->registry().on_switch([&](const std::string&, const registry::Binding& now) {
    if (!now) ++unbound;
  });
  fs::remove(rig.path("probe.so"));
  fs::copy_file(probe_b(), rig.path("probe.so"));
  REQUIRE(rig.wait_version("B") != 0);
  CHECK(unbound == 0);
  CHECK(rig.status()->last_error.empty());
}

TEST_CASE("a bad new version leaves the old one serving, with the error in the file's status") {
  ReloadRig rig;
  const uint64_t gen_a = rig.generation();

  install_plugin_file(probe_broken(), rig.dir.path(), "probe.so");
  REQUIRE(eventually([&] { return !rig.status()->last_error.empty(); }));
  auto status = rig.status();
  CHECK(status->state == "serving");
  CHECK_MESSAGE(status->last_error.find("probe factory refuses: built broken on purpose") != std::string::npos,
                status->last_error);
  CHECK(status->last_error.starts_with(rig.path("probe.so").string() + ": "));
  CHECK(rig.generation() == gen_a);
  auto served = rig.run_short("still-a");
  REQUIRE(served);
  CHECK(served->plugin_version() == "A");

  // Not even an ELF file: same, with the loader's reason.
  const fs::path tmp = rig.path(".garbage.tmp");
  append_bytes(tmp, "this is not a plugin", true);
  fs::rename(tmp, rig.path("probe.so"));
  REQUIRE(eventually([&] { return rig.status()->last_error.find("not an ELF file") != std::string::npos; }));
  CHECK(rig.generation() == gen_a);

  // A good version clears the error.
  install_plugin_file(probe_b(), rig.dir.path(), "probe.so");
  REQUIRE(rig.wait_version("B") != 0);
  CHECK(rig.status()->last_error.empty());
}

TEST_CASE("a symlink re-pointed atomically, or by ln -sfn, switches the version without an outage") {
  TempDir targets;
  install_plugin_file(probe_a(), targets.path(), "a.so");
  install_plugin_file(probe_b(), targets.path(), "b.so");
  ReloadRig::Options o;
  o.settle = 300ms;
  ReloadRig rig(o, {});
  std::atomic<int> unbound{0};
  rig.host->registry().on_switch([&](const std::string&, const registry::Binding& now) {
    if (!now) ++unbound;
  });
  const fs::path link = rig.path("probe.so");
  fs::create_symlink(targets.path() / "a.so", link);  // IN_CREATE of a symlink: complete at once
  REQUIRE(rig.wait_version("A") != 0);

  swap_symlink(targets.path() / "b.so", link);  // ln -s + rename: IN_MOVED_TO
  REQUIRE(rig.wait_version("B") != 0);
  CHECK(rig.run_short("on-b")->plugin_version() == "B");

  // ln -sfn: unlink, then symlink (IN_DELETE then IN_CREATE): the settle time bridges the gap.
  fs::remove(link);
  fs::create_symlink(targets.path() / "a.so", link);
  REQUIRE(rig.wait_version("A") != 0);
  CHECK(rig.run_short("on-a")->plugin_version() == "A");
  CHECK(unbound == 0);
  CHECK(rig.current()->source() == link);  // keyed by its name in the plugins dir, not the target
}

TEST_CASE("two files trading kinds in one change both switch; a conflict that remains is refused") {
  ReloadRig rig({{swap_1(), "a.so"}, {swap_2(), "b.so"}});
  CHECK(rig.host->registry().resolve("swap.k1").generation->source() == rig.path("a.so"));

  // a.so: K1 -> K2 and b.so: K2 -> K1, each by its own rename.
  const fs::path tmp_a = rig.path(".a.so.tmp"), tmp_b = rig.path(".b.so.tmp");
  fs::copy_file(swap_2(), tmp_a);
  fs::copy_file(swap_1(), tmp_b);
  fs::rename(tmp_a, rig.path("a.so"));
  fs::rename(tmp_b, rig.path("b.so"));
  REQUIRE(eventually([&] {
    const auto k1 = rig.host->registry().resolve("swap.k1");
    const auto k2 = rig.host->registry().resolve("swap.k2");
    return k1 && k2 && k1.generation->source() == rig.path("b.so") && k2.generation->source() == rig.path("a.so") &&
           rig.status("a.so")->last_error.empty() && rig.status("b.so")->last_error.empty();
  }));
  CHECK(rig.run_short("k1", "swap.k1")->state() == v1::SUCCEEDED);
  CHECK(rig.run_short("k2", "swap.k2")->state() == v1::SUCCEEDED);

  // b.so now claims K2 too, while a.so keeps serving K2: the final state still conflicts. The file that
  // did not change wins; b.so keeps its previous generation (K1) and says why.
  const uint64_t b_before = rig.generation("b.so");
  install_plugin_file(swap_2(), rig.dir.path(), "b.so");
  REQUIRE(eventually([&] { return !rig.status("b.so")->last_error.empty(); }));
  CHECK(rig.status("b.so")->last_error ==
        rig.path("b.so").string() + ": kind 'swap.k2' is already served by " + rig.path("a.so").string());
  CHECK(rig.generation("b.so") == b_before);
  CHECK(rig.host->registry().resolve("swap.k1").generation->source() == rig.path("b.so"));
  CHECK(rig.host->registry().resolve("swap.k2").generation->source() == rig.path("a.so"));

  // Once a.so is removed, the refused b.so is retried (its content did not change) and serves K2.
  fs::remove(rig.path("a.so"));
  REQUIRE(eventually([&] {
    const auto k2 = rig.host->registry().resolve("swap.k2");
    return k2 && k2.generation->source() == rig.path("b.so");
  }));
  CHECK(rig.status("b.so")->last_error.empty());
  CHECK_FALSE(rig.host->registry().resolve("swap.k1"));
}

TEST_CASE("the periodic rescan catches what inotify cannot see: a symlink's target replaced elsewhere") {
  TempDir outside;
  install_plugin_file(probe_a(), outside.path(), "target.so");
  ReloadRig::Options o;
  o.rescan_interval = 300ms;
  ReloadRig rig(o, {});
  fs::create_symlink(outside.path() / "target.so", rig.path("probe.so"));
  REQUIRE(rig.wait_version("A") != 0);
  const uint64_t events = rig.host->watcher()->stats().events;
  CHECK(rig.host->watcher()->stats().watching);

  install_plugin_file(probe_b(), outside.path(), "target.so");  // no event in the watched directory
  REQUIRE(rig.wait_version("B", "probe.so", 5s) != 0);
  CHECK(rig.host->watcher()->stats().events == events);
  CHECK(rig.run_short("fallback")->plugin_version() == "B");
}
