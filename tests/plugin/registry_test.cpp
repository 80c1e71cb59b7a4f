// KindRegistry with real generations: atomic per-file switches, conflicts between files, unbinding,
// file states for `taskhost plugins`, listeners called outside the lock.
#include "loader_test_support.hpp"
#include "plugin/loader.hpp"
#include "registry/kind_registry.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <thread>

using namespace taskhost::registry;
using namespace taskhost::plugin_test;
using taskhost::plugin::load_generation;

namespace {

GenerationPtr load(const fs::path& file, uint64_t id, RecordingHost& host) {
  auto result = load_generation(file, id, host.api());
  REQUIRE_MESSAGE(result.generation != nullptr, result.error);
  return GenerationPtr(std::move(result.generation));
}

}  // namespace

TEST_CASE("install binds every kind of a generation; resolve and bindings see it") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  const fs::path a = place(dir.path(), "loader-echo", "a.so");
  const fs::path b = place(dir.path(), "loader-second", "b.so");
  const GenerationPtr ga = load(a, 1, host);
  const GenerationPtr gb = load(b, 2, host);

  CHECK_FALSE(registry.resolve("fixture.echo"));
  CHECK(registry.install(gb).empty());
  CHECK(registry.install(ga).empty());
  CHECK(registry.install(ga).empty());  // installing the current generation again changes nothing

  const Binding echo = registry.resolve("fixture.echo");
  REQUIRE(echo);
  CHECK(echo.generation == ga);
  CHECK(echo.executor == ga->find("fixture.echo"));
  CHECK(registry.current(a) == ga);
  CHECK(registry.current(dir / "other.so") == nullptr);

  const auto all = registry.bindings();
  REQUIRE(all.size() == 2);
  CHECK(all[0].executor->kind() == "fixture.echo");  // sorted by kind
  CHECK(all[1].executor->kind() == "fixture.second");
}

TEST_CASE("a kind served by one file is refused to another, naming both files and the kind") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  const fs::path a = place(dir.path(), "loader-echo", "a.so");
  const fs::path b = place(dir.path(), "loader-rival", "b.so");
  const GenerationPtr ga = load(a, 1, host);
  REQUIRE(registry.install(ga).empty());

  const GenerationPtr gb = load(b, 2, host);
  CHECK(registry.install(gb) == b.string() + ": kind 'fixture.echo' is already served by " + a.string());
  CHECK(registry.resolve("fixture.echo").generation == ga);
  CHECK(registry.current(b) == nullptr);

  // Once a.so is gone the kind is free for b.so.
  registry.remove_file(a);
  CHECK(registry.install(gb).empty());
  CHECK(registry.resolve("fixture.echo").generation == gb);
}

TEST_CASE("a new generation of a file replaces the old one for all kinds and unbinds kinds it dropped") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  std::vector<std::pair<std::string, uint64_t>> switches;  // kind, generation id (0 = unbound)
  registry.on_switch([&](const std::string& kind, const Binding& now) {
    switches.emplace_back(kind, now ? now.generation->id() : 0);
  });

  const fs::path file = place(dir.path(), "loader-echo", "p.so");
  GenerationPtr first = load(file, 1, host);
  REQUIRE(registry.install(first).empty());
  // The same path now holds a different plugin that serves a different kind.
  write_bytes(file, read_bytes(fixture("loader-second")));
  const GenerationPtr second = load(file, 2, host);
  REQUIRE(registry.install(second).empty());

  CHECK_FALSE(registry.resolve("fixture.echo"));
  CHECK(registry.resolve("fixture.second").generation == second);
  CHECK(switches ==
        std::vector<std::pair<std::string, uint64_t>>{{"fixture.echo", 1}, {"fixture.echo", 0}, {"fixture.second", 2}});

  // The first generation drains while someone holds it, and is gone from the listing once released.
  {
    const auto files = registry.files();
    const FileStatus* status = status_of(files, file);
    REQUIRE(status != nullptr);
    CHECK(status->state == "serving");
    CHECK(status->current == second);
    REQUIRE(status->draining.size() == 1);
    CHECK(status->draining[0] == first);
  }
  std::weak_ptr<const taskhost::plugin::Generation> weak_first = first;
  first.reset();
  CHECK(weak_first.expired());  // the registry did not keep it alive
  CHECK(status_of(registry.files(), file)->draining.empty());
}

TEST_CASE("file states: failed, serving with an error, removed, draining") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  const fs::path a = place(dir.path(), "loader-echo", "a.so");

  registry.record_failure(a, "a.so: not an ELF file");
  auto status = *status_of(registry.files(), a);
  CHECK(status.state == "failed");
  CHECK(status.last_error == "a.so: not an ELF file");

  GenerationPtr g = load(a, 1, host);
  REQUIRE(registry.install(g).empty());
  status = *status_of(registry.files(), a);
  CHECK(status.state == "serving");
  CHECK(status.last_error.empty());

  registry.record_failure(a, "a.so: newer version broken");
  status = *status_of(registry.files(), a);
  CHECK(status.state == "serving");
  CHECK(status.last_error == "a.so: newer version broken");
  CHECK(registry.resolve("fixture.echo").generation == g);

  std::vector<std::string> unbound;
  registry.on_switch([&](const std::string& kind, const Binding& now) {
    if (!now) unbound.push_back(kind);
  });
  registry.remove_file(a);
  CHECK(unbound == std::vector<std::string>{"fixture.echo"});
  CHECK_FALSE(registry.resolve("fixture.echo"));
  status = *status_of(registry.files(), a);
  CHECK(status.state == "draining");  // we still hold g, as a running task would
  CHECK(status.last_error.empty());   // the broken newer version went with the file
  CHECK(status.current == nullptr);
  status = {};
  g.reset();
  CHECK(status_of(registry.files(), a)->state == "removed");
}

TEST_CASE("listeners run outside the registry lock") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  bool resolved_from_other_thread = false;
  std::promise<void> resolved;
  std::thread other;
  registry.on_switch([&](const std::string& kind, const Binding&) {
    // Under the registry's exclusive lock this resolve could not finish; give it a bounded wait. The
    // thread is joined after install returned, so a failing run still ends.
    other = std::thread([&, kind] {
      (void)registry.resolve(kind);
      resolved.set_value();
    });
    resolved_from_other_thread = resolved.get_future().wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  });
  REQUIRE(registry.install(load(place(dir.path(), "loader-echo", "a.so"), 1, host)).empty());
  other.join();
  CHECK(resolved_from_other_thread);
}

TEST_CASE("clear drops every generation") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  GenerationPtr g = load(place(dir.path(), "loader-echo", "a.so"), 1, host);
  std::weak_ptr<const taskhost::plugin::Generation> weak = g;
  REQUIRE(registry.install(std::move(g)).empty());
  CHECK_FALSE(weak.expired());
  registry.clear();
  CHECK(weak.expired());
  CHECK_FALSE(registry.resolve("fixture.echo"));
  CHECK(registry.files().empty());
  CHECK(registry.bindings().empty());
  CHECK(open_memfds("fixture-echo") == 0);
}
