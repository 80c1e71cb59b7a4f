// ABI compatibility seen by the host's own loader (taskhost::plugin::load_generation): the same fixtures
// as abi_testkit_test, and every sample plugin, through the code path production uses.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <taskhost/testkit.hpp>
#include <vector>

#include "plugin/loader.hpp"

using taskhost::plugin::CallResult;
using taskhost::plugin::KindExecutor;
using taskhost::plugin::load_generation;
using taskhost::plugin::LoadResult;
using taskhost::plugin::TaskCall;
using taskhost::testkit::FakeHost;

namespace {

constexpr auto kWait = std::chrono::seconds(10);

std::string fixture(const std::string& name) { return std::string(TASKHOST_FIXTURE_DIR) + "/" + name + ".so"; }
std::string sample(const std::string& name) { return std::string(TASKHOST_PLUGIN_DIR) + "/" + name + ".so"; }

struct Started {
  th_task_ref ref = 0;
  CallResult call;
};

// Starts one task of `kind` on `executor` with the fake host's sink; the host side of the test kit.
Started start(FakeHost& host, const KindExecutor& executor, const std::string& id, const std::string& input) {
  Started s;
  s.ref = host.open_attempt(id, executor.kind(), 1, executor.encoding());
  TaskCall call;  // the C ABI's th_task_info: pointers into id, kind and input, which outlive the call
  call.task = s.ref;
  call.task_id = id.c_str();
  call.kind = executor.kind().c_str();
  call.input = th_bytes{reinterpret_cast<const uint8_t*>(input.data()), input.size()};
  s.call = executor.start(call);
  return s;
}

void release(FakeHost& host, const KindExecutor& executor, th_task_ref ref, const std::string& id) {
  TaskCall call;
  call.task = ref;
  call.task_id = id.c_str();
  call.kind = executor.kind().c_str();
  executor.release(call);
  host.close(ref);
}

// Runs `input` through `kind` of the plugin file and returns the output ("" if it did not succeed).
std::string run_one(const std::string& file, const std::string& kind, const std::string& input) {
  FakeHost host;
  LoadResult loaded = load_generation(file, 1, *host.api());
  REQUIRE_MESSAGE(loaded.generation != nullptr, loaded.error);
  const KindExecutor* executor = loaded.generation->find(kind);
  REQUIRE(executor != nullptr);
  const Started s = start(host, *executor, "t1", input);
  CHECK_MESSAGE(s.call.ok(), s.call.error);
  REQUIRE(host.wait(
      s.ref, [](const auto& v) { return v.terminal(); }, kWait));
  release(host, *executor, s.ref, "t1");
  const auto view = host.view(s.ref);
  return view->result->state == TH_STATE_SUCCEEDED ? view->result->output : std::string();
}

}  // namespace

TEST_CASE("host: an ABI 1.0 plugin loads; its kind has no 1.1 discovery fields, and it runs") {
  FakeHost host;
  LoadResult loaded = load_generation(fixture("abi-v1-0"), 1, *host.api());
  REQUIRE_MESSAGE(loaded.generation != nullptr, loaded.error);
  CHECK(loaded.generation->manifest().abi_minor == 0);
  const KindExecutor* executor = loaded.generation->find("abi10.echo");
  REQUIRE(executor != nullptr);
  CHECK(executor->description().empty());
  CHECK(executor->input_schema().empty());
  CHECK(run_one(fixture("abi-v1-0"), "abi10.echo", R"({"from":"1.0"})") == R"({"from":"1.0"})");
}

TEST_CASE("host: newer-minor and other-major plugins are refused with the versions named") {
  FakeHost host;
  const LoadResult newer = load_generation(fixture("abi-newer-minor"), 1, *host.api());
  CHECK(newer.generation == nullptr);
  CHECK(newer.error.find(ABI_NEWER) != std::string::npos);
  const LoadResult major = load_generation(fixture("abi-major-2"), 2, *host.api());
  CHECK(major.generation == nullptr);
  CHECK(major.error.find(ABI_NEXT_MAJOR) != std::string::npos);
}

TEST_CASE("host: a clang++/libc++ plugin loads, runs on its own thread, and its exception stays inside") {
  CHECK(run_one(fixture("abi-libcxx"), "libcxx.echo", R"(["x"])") == R"(["x"])");
  FakeHost host;
  LoadResult loaded = load_generation(fixture("abi-libcxx"), 1, *host.api());
  REQUIRE_MESSAGE(loaded.generation != nullptr, loaded.error);
  const KindExecutor* thrower = loaded.generation->find("libcxx.throw");
  REQUIRE(thrower != nullptr);
  const Started s = start(host, *thrower, "t2", "{}");
  CHECK(s.call.status == TH_FAILED);
  CHECK(s.call.error == "thrown inside libc++");
  release(host, *thrower, s.ref, "t2");
}

TEST_CASE("host: every sample plugin loads with the host's loader and serves a task") {
  CHECK(run_one(sample("hello-c"), "hello.greet", R"({"name":"Ada"})") == R"("Hello, Ada!")");
  CHECK(run_one(sample("cpp-interactive"), "interactive.echo", R"({"a":1})") == R"({"a":1})");
  CHECK(run_one(sample("cpp-interactive"), "interactive.count", R"({"steps":2,"delay_ms":1})") ==
        R"({"plugin":"cpp-interactive","version":"1.0.0","counted":2,"resumed_from":0,"answer":null})");
#if TASKHOST_HAVE_RUST
  CHECK(run_one(sample("rust-hello"), "rust.hello", "{}") == R"("Hello from Rust, world!")");
#endif
}
