// load_generation through real fixture .so files: private memfd copies, descriptor validation, factory
// failures, and the dlopen-by-name trap (a later load must never get an older library back).
#include "plugin/loader.hpp"
#include "loader_test_support.hpp"
#include "plugin/descriptor_check.hpp"

#include <doctest/doctest.h>

using namespace taskhost::plugin;
using namespace taskhost::plugin_test;

namespace {

std::unique_ptr<Generation> must_load(const fs::path& file, uint64_t id, RecordingHost& host) {
  LoadResult result = load_generation(file, id, host.api());
  REQUIRE_MESSAGE(result.generation != nullptr, result.error);
  CHECK(result.error.empty());
  return std::move(result.generation);
}

// Runs one echo task on `generation` and returns its output ("" if it did not complete).
std::string echo(const Generation& generation, RecordingHost& host, th_task_ref ref, const std::string& input) {
  const KindExecutor* executor = generation.find(generation.manifest().kinds.at(0));
  REQUIRE(executor != nullptr);
  const CallResult call = start_task(*executor, ref, "task-" + std::to_string(ref), input);
  CHECK_MESSAGE(call.ok(), call.error);
  return host.output(ref).value_or("");
}

}  // namespace

TEST_CASE("a good plugin loads into a generation that serves its kind") {
  TempDir dir;
  RecordingHost host;
  const fs::path file = place(dir.path(), "loader-echo", "echo.so");
  std::string hash_error;
  const std::string hash = content_hash_of(file, &hash_error);
  REQUIRE(hash.size() == 64);

  {
    auto generation = must_load(file, 7, host);
    CHECK(generation->id() == 7);
    CHECK(generation->source() == file);
    CHECK(generation->name() == "fixture-echo");
    CHECK(generation->version() == "1.0.0");
    CHECK(generation->content_hash() == hash);
    REQUIRE(generation->executors().size() == 1);
    const KindExecutor* executor = generation->find("fixture.echo");
    REQUIRE(executor != nullptr);
    CHECK(executor->description() == "echoes its input");  // an ABI 1.1 field, present
    CHECK(generation->find("fixture.other") == nullptr);

    CHECK(echo(*generation, host, 1, R"({"hello":"world"})") == R"({"hello":"world"})");
    CHECK(host.logged("fixture-echo 1.0.0 executor #1 started task-1"));
    // The private copy: a memfd named after the plugin and its content hash.
    CHECK(open_memfds("fixture-echo-" + hash.substr(0, 12)) == 1);
  }
  // Unloaded for real, so its fd is closed: nothing left that could alias a later load.
  CHECK(open_memfds("fixture-echo") == 0);
}

TEST_CASE("the same file loaded twice gives two private copies, both working") {
  TempDir dir;
  RecordingHost host;
  const fs::path file = place(dir.path(), "loader-echo", "echo.so");
  auto first = must_load(file, 1, host);
  auto second = must_load(file, 2, host);
  CHECK(first->content_hash() == second->content_hash());
  CHECK(open_memfds("fixture-echo") == 2);

  // Each copy has its own static state: both number their executor #1. Had the second dlopen been
  // answered with the first library (same name), the second executor would be #2.
  CHECK(echo(*first, host, 1, "\"a\"") == "\"a\"");
  CHECK(echo(*second, host, 2, "\"b\"") == "\"b\"");
  CHECK(host.logged("executor #1 started task-1"));
  CHECK(host.logged("executor #1 started task-2"));
  CHECK_FALSE(host.logged("executor #2"));
}

TEST_CASE("overwriting a loaded file in place and loading again gives a new generation; the old one still runs") {
  TempDir dir;
  RecordingHost host;
  const fs::path file = place(dir.path(), "loader-echo", "echo.so");
  auto old_generation = must_load(file, 1, host);

  write_bytes(file, read_bytes(fixture("loader-echo-v2")));  // same inode, new bytes
  auto new_generation = must_load(file, 2, host);
  CHECK(new_generation->version() == "2.0.0");
  CHECK(new_generation->content_hash() != old_generation->content_hash());

  CHECK(echo(*old_generation, host, 1, "1") == "1");
  CHECK(echo(*new_generation, host, 2, "2") == "2");
  CHECK(host.logged("fixture-echo 1.0.0 executor #1 started task-1"));
  CHECK(host.logged("fixture-echo 2.0.0 executor #1 started task-2"));
}

TEST_CASE("after an unload, a new load gets the new library even if it reuses the fd number") {
  TempDir dir;
  RecordingHost host;
  must_load(place(dir.path(), "loader-echo", "v1.so"), 1, host).reset();
  auto v2 = must_load(place(dir.path(), "loader-echo-v2", "v2.so"), 2, host);
  CHECK(echo(*v2, host, 1, "x") == "x");
  CHECK(host.logged("fixture-echo 2.0.0 executor #1 started task-1"));
}

TEST_CASE("a library that cannot unload keeps its fd, so a later load is still a fresh copy") {
  TempDir dir;
  RecordingHost host;
  const fs::path file = place(dir.path(), "loader-pinned", "pinned.so");
  const int before = open_memfds("fixture-pinned");

  auto first = must_load(file, 1, host);
  CHECK(echo(*first, host, 1, "1") == "1");
  first.reset();
  // Linked -z nodelete: dlclose left it mapped, so its /proc/self/fd/N name stays reserved.
  CHECK(open_memfds("fixture-pinned") == before + 1);

  auto second = must_load(file, 2, host);
  CHECK(echo(*second, host, 2, "2") == "2");
  // Fresh static state: the resident old copy would have said #2 for its second executor.
  CHECK(host.logged("fixture-pinned 1.0.0 executor #1 started task-2"));
  CHECK_FALSE(host.logged("executor #2"));
}

TEST_CASE("dlopen's own error text is reported, not Boost.DLL's") {
  TempDir dir;
  RecordingHost host;
  // Point the plugin's DT_NEEDED entry for libc at a library that does not exist: the file still
  // inspects fine, and only the dynamic loader can refuse it.
  std::string image = read_bytes(fixture("loader-echo"));
  const size_t at = image.find("libc.so.6");
  REQUIRE(at != std::string::npos);
  image.replace(at, 9, "libx.so.6");
  const fs::path file = dir / "needs-missing-lib.so";
  write_bytes(file, image);
  REQUIRE(inspect_file(file).ok());

  const LoadResult result = load_generation(file, 1, host.api());
  CHECK(result.generation == nullptr);
  CHECK(result.error.starts_with(file.string() + ": dlopen refused it: "));
  CHECK(contains(result.error, "libx.so.6: cannot open shared object file"));
  CHECK(open_memfds("fixture-echo") == 0);
}

TEST_CASE("a broken descriptor or factory fails the whole load with the field or the plugin's words") {
  struct Case {
    const char* target;
    std::string expected;
  };
  const std::string prefix = "fixture.broken.broken-";
  const Case cases[] = {
      {"loader-broken-small-struct", "kinds[1] ('fixture.broken.broken-small-struct'): struct_size is " +
                                         std::to_string(offsetof(th_kind_descriptor, on_start)) +
                                         ", smaller than the ABI 1.0 size " + std::to_string(kKindDescriptorSize_1_0)},
      {"loader-broken-missing-cancel", "kind '" + prefix + "missing-cancel': required function on_cancel is NULL"},
      {"loader-broken-half-reattach", "kind '" + prefix +
                                          "half-reattach': half-provided capability group 're-attach': "
                                          "on_can_reattach is set but on_detach is NULL"},
      {"loader-broken-factory-error", "kind '" + prefix +
                                          "factory-error': on_create_executor failed with TH_FAILED (3): license "
                                          "server unreachable"},
      {"loader-broken-factory-null",
       "kind '" + prefix + "factory-null': on_create_executor returned TH_OK but a NULL executor"},
      {"loader-broken-manifest-mismatch", "descriptor version '9.9.9' differs from the manifest's version '1.0.0'"},
      {"loader-broken-bad-schema", "kind '" + prefix + "bad-schema': output_schema_json is not JSON (syntax error)"},
      // Refused before kinds[2], past the array's end, is read (it used to be, and the host crashed).
      {"loader-broken-kind-count", "descriptor kind_count is 3 but the manifest lists 2 kind(s) (" + prefix +
                                       "kind-count.helper," + prefix + "kind-count)"},
  };
  for (const Case& c : cases) {
    const std::string target = c.target;
    CAPTURE(target);
    TempDir dir;
    RecordingHost host;
    const fs::path file = place(dir.path(), c.target, "plugin.so");
    const LoadResult result = load_generation(file, 1, host.api());
    CHECK(result.generation == nullptr);
    CHECK(result.error == file.string() + ": " + c.expected);
    // Nothing half-loaded stays behind: the copy was unmapped and its fd closed.
    CHECK(open_memfds("broken-") == 0);
  }
}

TEST_CASE("when a later factory fails, executors already created are destroyed before the unload") {
  TempDir dir;
  RecordingHost host;
  const LoadResult result = load_generation(place(dir.path(), "loader-broken-factory-error", "p.so"), 1, host.api());
  CHECK(result.generation == nullptr);
  CHECK(host.logs() == std::vector<std::string>{"destroyed executor of fixture.broken.broken-factory-error.helper"});
}

TEST_CASE("a factory that rewrites its descriptors after the check changes nothing the host serves") {
  // QA: the descriptor was checked before the factories ran but copied after them, so the host served
  // the rewritten kind name (not UTF-8: every plugin listing broke) and called the NULL on_start.
  TempDir dir;
  RecordingHost host;
  auto generation = must_load(place(dir.path(), "loader-mutating", "mutating.so"), 1, host);
  REQUIRE(generation->executors().size() == 2);
  CHECK(generation->executors()[0]->kind() == "fixture.mutating.first");
  CHECK(generation->executors()[1]->kind() == "fixture.mutating.second");
  const KindExecutor* first = generation->find("fixture.mutating.first");
  const KindExecutor* second = generation->find("fixture.mutating.second");
  REQUIRE(first != nullptr);
  REQUIRE(second != nullptr);
  // As checked: the strings as they were (the factory overwrote their bytes in place), the encoding...
  CHECK(first->description() == "as checked");
  CHECK(first->encoding() == TH_ENCODING_JSON);
  CHECK(second->encoding() == TH_ENCODING_JSON);
  // ...and the functions: the checked on_start, not NULL (kind 1) nor the swapped one (kind 2).
  CHECK(start_task(*first, 1, "m1", "{}").ok());
  CHECK(host.output(1) == std::optional<std::string>("\"checked start\""));
  CHECK(start_task(*second, 2, "m2", "{}").ok());
  CHECK(host.output(2) == std::optional<std::string>("\"checked start\""));
  TaskCall call;
  call.task = 2;
  CHECK(second->cancel(call).ok());  // on_cancel, which the factory set to NULL after the check
}

TEST_CASE("a missing file is an error naming it") {
  RecordingHost host;
  const fs::path file = "/nonexistent/taskhost/gone.so";
  const LoadResult result = load_generation(file, 1, host.api());
  CHECK(result.generation == nullptr);
  CHECK(result.error == file.string() + ": cannot open: No such file or directory");
  std::string error;
  CHECK(content_hash_of(file, &error).empty());
  CHECK(error == result.error);
}
