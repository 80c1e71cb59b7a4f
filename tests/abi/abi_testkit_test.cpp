// ABI compatibility seen by the SDK's test kit (which applies the host's rules): an ABI 1.0 plugin runs
// with its 1.1 fields absent, newer-minor and other-major plugins are refused from the manifest before
// any of their code runs, and a libc++ plugin works beside this libstdc++ process.
#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <taskhost/testkit.hpp>

using taskhost::testkit::EventType;
using taskhost::testkit::PluginUnderTest;

namespace {

constexpr auto kWait = std::chrono::seconds(10);

std::string fixture(const std::string& name) { return std::string(TASKHOST_FIXTURE_DIR) + "/" + name + ".so"; }

}  // namespace

TEST_CASE("a plugin built against the frozen ABI 1.0 header loads and runs; 1.1 fields read as absent") {
  PluginUnderTest plugin(fixture("abi-v1-0"));
  CHECK(plugin.descriptor().abi_minor == 0);
  const th_kind_descriptor& kind = plugin.kind("abi10.echo");
  CHECK(kind.struct_size < sizeof(th_kind_descriptor));
  CHECK_FALSE(TH_HAS_FIELD(&kind, th_kind_descriptor, description));
  CHECK(kind.description == nullptr);  // zero-filled past the plugin's struct_size, never read from it
  const auto task = plugin.start("abi10.echo", R"({"from":"1.0"})");
  const auto result = plugin.wait_terminal(task, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(result->output == R"({"from":"1.0"})");
}

TEST_CASE("a plugin declaring a newer minor is refused before it is loaded") {
  CHECK_THROWS_WITH_AS(PluginUnderTest(fixture("abi-newer-minor")),
                       doctest::Contains("manifest: plugin ABI " ABI_NEWER), std::runtime_error);
}

TEST_CASE("a plugin declaring another major is refused before it is loaded") {
  CHECK_THROWS_WITH_AS(PluginUnderTest(fixture("abi-major-2")),
                       doctest::Contains("manifest: plugin ABI " ABI_NEXT_MAJOR), std::runtime_error);
}

TEST_CASE("a clang++/libc++ plugin runs beside libstdc++: threads work and its exceptions stay inside") {
  PluginUnderTest plugin(fixture("abi-libcxx"));
  const auto echo = plugin.start("libcxx.echo", R"(["libc++"])");
  const auto result = plugin.wait_terminal(echo, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_SUCCEEDED);
  CHECK(result->output == R"(["libc++"])");
  CHECK(plugin.view(echo).of(EventType::progress).at(0).label.rfind("libc++ ", 0) == 0);

  const auto thrown = plugin.start("libcxx.throw", "{}");
  CHECK(thrown.start_status.code == TH_FAILED);
  CHECK(thrown.start_status.message == "thrown inside libc++");
}
