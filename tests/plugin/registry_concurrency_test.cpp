// Loads and unloads while other threads resolve kinds and call into the plugins they got. Runs in the
// main build and under ASan+UBSan and TSan (label "concurrency").
#include "eventually.hpp"
#include "loader_test_support.hpp"
#include "registry/kind_registry.hpp"
#include "registry/plugin_directory.hpp"

#include <doctest/doctest.h>

#include <thread>

using namespace taskhost::registry;
using namespace taskhost::plugin_test;
using taskhost::testing::eventually;

TEST_CASE("resolvers never see a kind unbound or a half switch while another thread reloads it") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api());
  const fs::path echo = place(dir.path(), "loader-echo", "echo.so");
  place(dir.path(), "loader-second", "second.so");
  REQUIRE(plugins.scan().errors.empty());
  const std::string versions[] = {read_bytes(fixture("loader-echo-v2")), read_bytes(fixture("loader-echo"))};

  std::atomic<int> echo_switches{0};
  registry.on_switch([&](const std::string& kind, const Binding& now) {
    if (kind == "fixture.echo" && now) ++echo_switches;
  });

  std::atomic<bool> stop{false};
  std::atomic<int> unresolved{0}, failed{0}, wrong_output{0}, calls{0};
  std::vector<std::thread> threads;
  for (uint64_t t = 1; t <= 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t n = 0; !stop.load(); ++n) {
        // The binding keeps its generation mapped for as long as the call needs it, even if a reload
        // replaces it meanwhile; when this copy is the last one, the old generation goes to the directory's
        // releaser thread to be destroyed.
        const Binding binding = registry.resolve(n % 2 ? "fixture.echo" : "fixture.second");
        if (!binding || binding.generation->find(binding.executor->kind()) != binding.executor) {
          ++unresolved;
          continue;
        }
        const th_task_ref ref = (t << 32) | n;
        const std::string input = std::to_string(ref);
        const auto call = start_task(*binding.executor, ref, "task", input);
        taskhost::plugin::TaskCall poll;
        poll.task = ref;
        poll.task_id = "task";
        poll.kind = binding.executor->kind().c_str();
        if (!call.ok() || !binding.executor->reconcile(poll).ok()) {
          ++failed;
        } else if (host.output(ref) != input) {
          ++wrong_output;
        }
        ++calls;
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop.load()) {
      for (const FileStatus& status : registry.files()) {
        if (status.state != "serving") ++unresolved;
      }
    }
  });

  constexpr int kReloads = 60;
  for (int i = 0; i < kReloads; ++i) {
    write_bytes(echo, versions[i % 2]);
    const std::string error = plugins.load_file(echo);
    CHECK_MESSAGE(error.empty(), error);
  }
  // Let the resolvers run against the final generation too.
  while (calls.load() < 200) std::this_thread::yield();
  stop = true;
  for (auto& thread : threads) thread.join();

  CHECK(unresolved.load() == 0);
  CHECK(failed.load() == 0);
  CHECK(wrong_output.load() == 0);
  CHECK(echo_switches.load() == kReloads);
  CHECK(registry.current(echo)->version() == "1.0.0");
  // Every replaced generation was released once the last binding that used it was dropped, and is
  // unloaded on the releaser's thread.
  for (const FileStatus& status : registry.files()) CHECK(status.draining.empty());
  CHECK(eventually([] { return open_memfds("fixture-echo") == 1; }));
  registry.clear();
  CHECK(eventually([] { return open_memfds("fixture-echo") == 0 && open_memfds("fixture-second") == 0; }));
}

TEST_CASE("concurrent scans are serialized: each file is loaded once") {
  TempDir dir;
  RecordingHost host;
  KindRegistry registry;
  PluginDirectory plugins(dir.path(), registry, host.api());
  place(dir.path(), "loader-echo", "echo.so");
  place(dir.path(), "loader-second", "second.so");

  std::atomic<int> loaded{0}, errors{0};
  std::vector<std::thread> scanners;
  for (int t = 0; t < 3; ++t) {
    scanners.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        const ScanReport report = plugins.scan();
        loaded += static_cast<int>(report.loaded.size());
        errors += static_cast<int>(report.errors.size());
      }
    });
  }
  for (auto& thread : scanners) thread.join();
  CHECK(loaded.load() == 2);
  CHECK(errors.load() == 0);
  CHECK(registry.bindings().size() == 2);
}
