// `cmake --install --component plugin_sdk` into a fresh prefix, then plugins built OUT OF TREE against
// that prefix only: the two projects `new-plugin` writes (CMake + find_package(TaskhostPluginSDK)), and a
// plain compiler command using pkg-config. Each resulting .so must export only the entry point, be
// accepted by the host's loader (load_generation) and run a task through the test kit.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <taskhost/testkit.hpp>
#include <vector>

#include "cli/new_plugin.hpp"
#include "plugin/loader.hpp"
#include "run_command.hpp"

namespace fs = std::filesystem;
using sdk_test::run;
using sdk_test::shell_quote;
using taskhost::testkit::PluginUnderTest;

namespace {

const fs::path kRoot = fs::path(TASKHOST_BUILD_DIR) / "sdk-install-test";
const fs::path kPrefix = kRoot / "prefix";

// Installs the SDK once per run of this executable; returns the install log on failure.
const sdk_test::CommandResult& installed() {
  static const sdk_test::CommandResult result = [] {
    fs::remove_all(kRoot);
    fs::create_directories(kRoot);
    return run("cmake --install " + shell_quote(TASKHOST_BUILD_DIR) + " --component plugin_sdk --prefix " +
               shell_quote(kPrefix.string()));
  }();
  return result;
}

// Configures and builds the CMake project in `source` against the installed SDK only.
sdk_test::CommandResult cmake_build(const fs::path& source) {
  const fs::path build = source / "build";
  std::string configure = "cmake -S " + shell_quote(source.string()) + " -B " + shell_quote(build.string()) +
                          " -G Ninja --no-warn-unused-cli -DCMAKE_PREFIX_PATH=" + shell_quote(kPrefix.string()) +
                          " -DCMAKE_C_COMPILER=" + shell_quote(TASKHOST_C_COMPILER) +
                          " -DCMAKE_CXX_COMPILER=" + shell_quote(TASKHOST_CXX_COMPILER);
  if (!std::string(TASKHOST_COMPILER_LAUNCHER).empty()) {
    configure += " -DCMAKE_C_COMPILER_LAUNCHER=" + std::string(TASKHOST_COMPILER_LAUNCHER) +
                 " -DCMAKE_CXX_COMPILER_LAUNCHER=" + std::string(TASKHOST_COMPILER_LAUNCHER);
  }
  sdk_test::CommandResult r = run(configure + " && cmake --build " + shell_quote(build.string()));
  return r;
}

std::vector<std::string> entry_only() { return {"taskhost_plugin_entry"}; }

// Runs "<kind>" with an object input through the test kit; true when it echoes the input back. First
// the host's own loader must accept the file.
bool echoes(const fs::path& so, const std::string& kind) {
  {
    taskhost::testkit::FakeHost host;
    const taskhost::plugin::LoadResult loaded = taskhost::plugin::load_generation(so, 1, *host.api());
    INFO(loaded.error);
    REQUIRE(loaded.generation != nullptr);
    CHECK(loaded.generation->find(kind) != nullptr);
  }
  PluginUnderTest plugin(so.string());
  const auto task = plugin.start(kind, R"({"hello":"world"})");
  const auto result = plugin.wait_terminal(task, std::chrono::seconds(5));
  return result && result->state == TH_STATE_SUCCEEDED && result->output == R"({"hello":"world"})";
}

}  // namespace

TEST_CASE("the installed SDK has the headers, the CMake package and the pkg-config file") {
  const auto& install = installed();
  INFO(install.output);
  REQUIRE(install.ok());
  for (const char* file :
       {"include/taskhost/plugin.h", "include/taskhost/sdk.hpp", "include/taskhost/testkit.hpp",
        "include/taskhost/internal/executor_glue.hpp", "include/taskhost/sdk/task_sink.hpp",
        "lib/cmake/TaskhostPluginSDK/TaskhostPluginSDKConfig.cmake",
        "lib/cmake/TaskhostPluginSDK/TaskhostPluginSDKConfigVersion.cmake",
        "lib/cmake/TaskhostPluginSDK/TaskhostPluginSDKTargets.cmake",
        "lib/cmake/TaskhostPluginSDK/TaskhostAddPlugin.cmake", "lib/cmake/TaskhostPluginSDK/taskhost-plugin.map",
        "share/pkgconfig/taskhost-plugin-sdk.pc"}) {
    CAPTURE(file);
    CHECK(fs::exists(kPrefix / file));
  }
}

TEST_CASE("a C++ plugin from `new-plugin` builds with find_package, exports only its entry and passes its test") {
  REQUIRE(installed().ok());
  const fs::path project = kRoot / "cpp-project";
  std::ostringstream out, err;
  REQUIRE(taskhost::cli::new_plugin_command("outoftree-cpp", "cpp", project, out, err) == 0);
  const auto build = cmake_build(project);
  INFO(build.output);
  REQUIRE(build.ok());
  const fs::path so = project / "build/outoftree-cpp.so";
  CHECK(sdk_test::defined_dynamic_symbols(so.string()) == entry_only());
  CHECK(echoes(so, "outoftree-cpp.echo"));
  // The project's own test, built against the installed test kit.
  const auto ctest = run("ctest --test-dir " + shell_quote((project / "build").string()) + " --output-on-failure");
  INFO(ctest.output);
  CHECK(ctest.ok());
}

TEST_CASE("a C plugin from `new-plugin` builds with find_package and runs") {
  REQUIRE(installed().ok());
  const fs::path project = kRoot / "c-project";
  std::ostringstream out, err;
  REQUIRE(taskhost::cli::new_plugin_command("outoftree-c", "c", project, out, err) == 0);
  const auto build = cmake_build(project);
  INFO(build.output);
  REQUIRE(build.ok());
  const fs::path so = project / "build/outoftree-c.so";
  CHECK(sdk_test::defined_dynamic_symbols(so.string()) == entry_only());
  CHECK(echoes(so, "outoftree-c.echo"));
}

TEST_CASE("a C++ plugin builds with a plain compiler command and pkg-config") {
  REQUIRE(installed().ok());
  const fs::path project = kRoot / "pkg-config-project";
  std::ostringstream out, err;
  REQUIRE(taskhost::cli::new_plugin_command("by-pkg-config", "cpp", project, out, err) == 0);
  const std::string env = "PKG_CONFIG_PATH=" + shell_quote((kPrefix / "share/pkgconfig").string()) + " ";
  const auto cflags = run(env + "pkg-config --cflags taskhost-plugin-sdk");
  INFO(cflags.output);
  REQUIRE(cflags.ok());
  std::istringstream tokens(cflags.output);
  bool include_ok = false;
  for (std::string t; tokens >> t;) {
    if (t.rfind("-I", 0) == 0) include_ok = fs::equivalent(t.substr(2), kPrefix / "include");
  }
  CHECK(include_ok);  // relative to the .pc file: right wherever the prefix is
  CHECK(cflags.output.find("-fvisibility=hidden") != std::string::npos);

  const fs::path so = project / "by-pkg-config.so";
  const std::string command = std::string(TASKHOST_CXX_COMPILER) + " -std=c++20 -fPIC -O1 -Wall -Wextra -Werror " +
                              "$(" + env + "pkg-config --cflags taskhost-plugin-sdk) -fvisibility-inlines-hidden " +
                              (std::string(TASKHOST_CXX_COMPILER_ID) == "GNU" ? "-fno-gnu-unique " : "") +
                              shell_quote((project / "src/by-pkg-config.cpp").string()) + " -o " +
                              shell_quote(so.string()) + " $(" + env +
                              "pkg-config --variable=plugin_ldflags taskhost-plugin-sdk)";
  const auto build = run(command);
  INFO(command);
  INFO(build.output);
  REQUIRE(build.ok());
  CHECK(sdk_test::defined_dynamic_symbols(so.string()) == entry_only());
  CHECK(echoes(so, "by-pkg-config.echo"));
}
