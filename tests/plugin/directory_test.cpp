// PluginDirectory over a real directory: one bad file never keeps a good one from serving, unchanged
// files are left alone, changed ones get a new generation, gone ones are removed.
#include "eventually.hpp"
#include "loader_test_support.hpp"
#include "plugin/file_bytes.hpp"
#include "plugin/loader.hpp"
#include "registry/kind_registry.hpp"
#include "registry/plugin_directory.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

using namespace taskhost::registry;
using namespace taskhost::plugin_test;
using taskhost::testing::eventually;

namespace {

// The echo kind resolves and runs a task end to end.
void check_echo_serves(KindRegistry& registry, RecordingHost& host, th_task_ref ref) {
  const Binding binding = registry.resolve("fixture.echo");
  REQUIRE(binding);
  const auto call = start_task(*binding.executor, ref, "t" + std::to_string(ref), "\"ping\"");
  CHECK_MESSAGE(call.ok(), call.error);
  CHECK(host.output(ref) == std::optional<std::string>("\"ping\""));
}

}  // namespace

TEST_CASE("each bad file is reported with its path and field while the good plugin beside it serves") {
  struct Case {
    const char* name;
    const char* target;    // fixture to copy in; null for the non-ELF bytes
    std::string expected;  // after "DIR/zz-bad.so: "
  };
  const std::string abi_range = std::to_string(TASKHOST_ABI_MAJOR) + ".0 to " + std::to_string(TASKHOST_ABI_MAJOR) +
                                "." + std::to_string(TASKHOST_ABI_MINOR);
  const Case cases[] = {
      {"not ELF", nullptr, "not an ELF file"},
      {"no entry point", "loader-broken-no-entry",
       "no entry point: the file does not export function 'taskhost_plugin_entry'"},
      {"no manifest", "loader-broken-no-manifest", "no manifest: section '.taskhost_manifest' is missing"},
      {"ABI major 2", "loader-abi2", "ABI refused: plugin ABI 2.0; this host accepts " + abi_range},
      {"struct too small", "loader-broken-small-struct",
       "kinds[1] ('fixture.broken.broken-small-struct'): struct_size is "},
      {"required function", "loader-broken-missing-cancel",
       "kind 'fixture.broken.broken-missing-cancel': required function on_cancel is NULL"},
      {"half group", "loader-broken-half-reattach",
       "kind 'fixture.broken.broken-half-reattach': half-provided capability group 're-attach': on_can_reattach "
       "is set but on_detach is NULL"},
      {"factory error", "loader-broken-factory-error",
       "kind 'fixture.broken.broken-factory-error': on_create_executor failed with TH_FAILED (3): license server "
       "unreachable"},
      {"factory NULL", "loader-broken-factory-null",
       "kind 'fixture.broken.broken-factory-null': on_create_executor returned TH_OK but a NULL executor"},
      {"manifest mismatch", "loader-broken-manifest-mismatch",
       "descriptor version '9.9.9' differs from the manifest's"},
      {"kind taken", "loader-rival", "kind 'fixture.echo' is already served by "},
  };
  for (const Case& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    TempDir dir;
    RecordingHost host;
    KindRegistry registry;
    PluginDirectory plugins(dir.path(), registry, host.api());
    const fs::path good = place(dir.path(), "loader-echo", "good.so");
    const fs::path bad = dir / "zz-bad.so";  // sorts after good.so: the good one claims its kind first
    if (c.target) {
      place(dir.path(), c.target, "zz-bad.so");
    } else {
      write_bytes(bad,
                  "\x7f"
                  "ELX but not really\n");
    }

    const ScanReport report = plugins.scan();
    CHECK(report.loaded == std::vector<fs::path>{good});
    REQUIRE(report.errors.size() == 1);
    const std::string& error = report.errors[0];
    CHECK_MESSAGE(error.starts_with(bad.string() + ": " + c.expected), error);
    if (std::string(c.name) == "kind taken") CHECK(error == bad.string() + ": " + c.expected + good.string());

    check_echo_serves(registry, host, 1);
    const auto files = registry.files();
    const FileStatus* bad_status = status_of(files, bad);
    REQUIRE(bad_status != nullptr);
    CHECK(bad_status->state == "failed");
    CHECK(bad_status->last_error == error);
    CHECK(bad_status->current == nullptr);
    const FileStatus* good_status = status_of(files, good);
    REQUIRE(good_status != nullptr);
    CHECK(good_status->state == "serving");
  }
}

TEST_CASE("a file whose executor factory does not return fails at the load timeout; the scan goes on") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api(), std::chrono::milliseconds(200));
  const fs::path hang = place(dir.path(), "loader-broken-factory-hang", "a-hang.so");  // sorts first
  const fs::path good = place(dir.path(), "loader-echo", "good.so");
  // Without the timeout the scan would wait out the factory (2 s) and load the file.
  const ScanReport report = plugins.scan();
  CHECK(report.loaded == std::vector<fs::path>{good});
  REQUIRE(report.errors.size() == 1);
  CHECK_MESSAGE(report.errors[0].starts_with(hang.string() + ": did not finish loading within 200 ms"), report.errors[0]);
  check_echo_serves(registry, host, 1);
  CHECK(registry.resolve("fixture.broken.broken-factory-hang.helper").executor == nullptr);
  // When the factory does return, the late generation is unloaded again: both its executors destroyed.
  auto destroyed = [&] {
    const auto logs = host.logs();
    const auto has = [&](const std::string& m) { return std::find(logs.begin(), logs.end(), m) != logs.end(); };
    return has("destroyed executor of fixture.broken.broken-factory-hang.helper") &&
           has("destroyed executor of fixture.broken.broken-factory-hang");
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!destroyed() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(destroyed());
  // Not retried by the watcher's scans (same content), and the file's status says why.
  const ScanOptions watcher_scan{{}, false};
  CHECK(plugins.scan(watcher_scan).errors.empty());
  const auto files = registry.files();
  const FileStatus* status = status_of(files, hang);
  REQUIRE(status != nullptr);
  CHECK(status->state == "failed");
}

TEST_CASE("a slow on_destroy_executor holds up no scan and no other unload: each generation is destroyed on a thread of its own") {
  TempDir dir, gates;
  RecordingHost host;
  KindRegistry registry;
  const fs::path gate = gates.path() / "open";
  // The fixture's destroy of its broken kind returns once `gate` exists (30 s at most).
  ::setenv("TASKHOST_FIXTURE_DESTROY_GATE", gate.c_str(), 1);
  const auto destroyed = [&] {
    const auto logs = host.logs();
    return std::find(logs.begin(), logs.end(), "destroyed executor of fixture.broken.broken-destroy-gate") != logs.end();
  };
  {
    PluginDirectory plugins(dir.path(), registry, host.api());
    const fs::path slow = place(dir.path(), "loader-broken-destroy-gate", "slow.so");
    REQUIRE(plugins.scan().loaded == std::vector<fs::path>{slow});
    fs::remove(slow);
    // No task holds the generation, so this scan drops its last reference. Destroyed right there, as it
    // was, the scan would wait for the gate (and the checks below would fail).
    CHECK(plugins.scan().removed == std::vector<fs::path>{slow});
    const fs::path good = place(dir.path(), "loader-echo", "good.so");
    CHECK(plugins.scan().loaded == std::vector<fs::path>{good});
    check_echo_serves(registry, host, 1);
    CHECK_FALSE(destroyed());  // still waiting for its gate, on the releaser's thread
    // Another generation released meanwhile is destroyed (its memfd closed) without waiting for the
    // stuck one: on one releaser thread in order, it waited for the gate.
    REQUIRE(open_memfds("fixture-echo") == 1);
    fs::remove(good);
    CHECK(plugins.scan().removed == std::vector<fs::path>{good});
    CHECK(eventually([] { return open_memfds("fixture-echo") == 0; }, std::chrono::seconds(5)));
    CHECK_FALSE(destroyed());
    std::ofstream(gate) << "open";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!destroyed() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(destroyed());
  }
  ::unsetenv("TASKHOST_FIXTURE_DESTROY_GATE");
}

TEST_CASE("scan leaves unchanged files alone and loads changed ones as a new generation") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api());
  const fs::path file = place(dir.path(), "loader-echo", "echo.so");
  place(dir.path(), "loader-second", "second.so");

  CHECK(plugins.scan().loaded.size() == 2);
  const GenerationPtr first = registry.current(file);
  REQUIRE(first);

  const ScanReport again = plugins.scan();
  CHECK(again.loaded.empty());
  CHECK(again.errors.empty());
  CHECK(again.removed.empty());
  CHECK(registry.current(file) == first);

  write_bytes(file, read_bytes(fixture("loader-echo-v2")));
  const ScanReport changed = plugins.scan();
  CHECK(changed.loaded == std::vector<fs::path>{file});
  const GenerationPtr second = registry.current(file);
  REQUIRE(second);
  CHECK(second->version() == "2.0.0");
  CHECK(second->id() > first->id());
  CHECK(registry.resolve("fixture.echo").generation == second);

  // The old generation is still alive (we hold it, as a running task would): shown as draining.
  const auto files = registry.files();
  const FileStatus* status = status_of(files, file);
  REQUIRE(status != nullptr);
  REQUIRE(status->draining.size() == 1);
  CHECK(status->draining[0] == first);
}

TEST_CASE("a failed update keeps the old generation serving; restoring the file clears the error") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api());
  const fs::path file = place(dir.path(), "loader-echo", "echo.so");
  const std::string good_bytes = read_bytes(file);
  REQUIRE(plugins.scan().errors.empty());
  const GenerationPtr serving = registry.current(file);

  write_bytes(file, "garbage");
  const ScanReport failed = plugins.scan();
  REQUIRE(failed.errors.size() == 1);
  CHECK(failed.errors[0] == file.string() + ": not an ELF file");
  CHECK(registry.current(file) == serving);
  check_echo_serves(registry, host, 1);
  auto files = registry.files();
  CHECK(status_of(files, file)->state == "serving");
  CHECK(status_of(files, file)->last_error == file.string() + ": not an ELF file");

  write_bytes(file, good_bytes);
  const ScanReport restored = plugins.scan();
  CHECK(restored.loaded.empty());  // same content as what serves: nothing to load
  CHECK(restored.errors.empty());
  files = registry.files();
  CHECK(status_of(files, file)->last_error.empty());
}

TEST_CASE("a plugin file over 1 GiB is refused unread, naming the file and its size; the others serve") {
  // QA dropped a sparse 3 GB file (no disk used) into the plugins directory: the host read it whole
  // into memory and aborted, at every start while the file was there; a 1 TB one took all memory.
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api());
  place(dir.path(), "loader-echo", "echo.so");
  const fs::path huge = dir.path() / "huge.so";
  { std::ofstream create(huge); }
  fs::resize_file(huge, taskhost::plugin::kMaxPluginFileBytes + 1);  // sparse
  const ScanReport report = plugins.scan();
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0] == huge.string() + ": larger than 1024 MiB, the most a plugin file may be (" +
                                std::to_string(taskhost::plugin::kMaxPluginFileBytes + 1) + " bytes)");
  check_echo_serves(registry, host, 1);
}

TEST_CASE("scan removes files that are gone, and a rename moves the kind in one scan") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api());
  const fs::path file = place(dir.path(), "loader-echo", "echo.so");
  const fs::path second = place(dir.path(), "loader-second", "second.so");
  REQUIRE(plugins.scan().loaded.size() == 2);

  fs::remove(second);
  const ScanReport removed = plugins.scan();
  CHECK(removed.removed == std::vector<fs::path>{second});
  CHECK_FALSE(registry.resolve("fixture.second"));
  CHECK(status_of(registry.files(), second)->state == "removed");

  const fs::path renamed = dir / "echo-renamed.so";
  fs::rename(file, renamed);
  const ScanReport moved = plugins.scan();
  CHECK(moved.removed == std::vector<fs::path>{file});
  CHECK(moved.loaded == std::vector<fs::path>{renamed});
  CHECK(moved.errors.empty());
  REQUIRE(registry.resolve("fixture.echo"));
  CHECK(registry.resolve("fixture.echo").generation->source() == renamed);
}

TEST_CASE("scan follows symlinks to plugins but ignores hidden, temporary and non-file entries") {
  TempDir dir;
  TempDir elsewhere;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api());
  const fs::path target = place(elsewhere.path(), "loader-echo", "real-echo.so");
  const fs::path link = dir / "linked.so";
  fs::create_symlink(target, link);
  place(dir.path(), "loader-second", ".second.so.tmp");
  place(dir.path(), "loader-second", ".hidden.so");
  place(dir.path(), "loader-second", "second.so.part");
  fs::create_directory(dir / "directory.so");
  fs::create_symlink(dir / "nowhere.so", dir / "dangling.so");

  const ScanReport report = plugins.scan();
  CHECK(report.errors.empty());
  CHECK(report.loaded == std::vector<fs::path>{link});
  CHECK_FALSE(registry.resolve("fixture.second"));
  const Binding binding = registry.resolve("fixture.echo");
  REQUIRE(binding);
  CHECK(binding.generation->source() == link);  // keyed by its path in the plugins dir
  std::string error;
  CHECK(binding.generation->content_hash() == taskhost::plugin::content_hash_of(target, &error));
}

TEST_CASE("load_file and remove_file act on one file; a missing directory is reported, not fatal") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api());
  const fs::path file = place(dir.path(), "loader-second", "second.so");
  CHECK(plugins.load_file(file).empty());
  CHECK(registry.resolve("fixture.second"));
  plugins.remove_file(file);
  CHECK_FALSE(registry.resolve("fixture.second"));

  PluginDirectory missing(dir / "no-such-dir", registry, host.api());
  const ScanReport report = missing.scan();
  REQUIRE(report.errors.size() == 1);
  CHECK(report.errors[0].starts_with((dir / "no-such-dir").string() + ": cannot list the plugins directory: "));
}
