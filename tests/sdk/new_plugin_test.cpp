// runtime/cli/new_plugin: argument checks and the files it writes. That the written projects build and
// load is proven by sdk_install_test against an installed SDK.
#include "cli/new_plugin.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fs = std::filesystem;
using taskhost::cli::new_plugin_command;

namespace {

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::path(TASKHOST_BUILD_DIR) / "sdk-new-plugin-test" / name;
  fs::remove_all(dir);
  return dir;
}

std::string read(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("new-plugin cpp writes a CMake project, a TASKHOST_PLUGIN source, a test and a README") {
  const fs::path dest = scratch("cpp");
  std::ostringstream out, err;
  REQUIRE(new_plugin_command("my-plugin", "cpp", dest, out, err) == 0);
  CHECK(err.str().empty());
  CHECK(fs::exists(dest / "CMakeLists.txt"));
  CHECK(fs::exists(dest / "src/my-plugin.cpp"));
  CHECK(fs::exists(dest / "tests/my-plugin_test.cpp"));
  CHECK(fs::exists(dest / "README.md"));
  const std::string cmake = read(dest / "CMakeLists.txt");
  CHECK(cmake.find("find_package(TaskhostPluginSDK 1.0 REQUIRED)") != std::string::npos);
  CHECK(cmake.find("taskhost_add_plugin(my-plugin SOURCES src/my-plugin.cpp)") != std::string::npos);
  const std::string source = read(dest / "src/my-plugin.cpp");
  CHECK(source.find("TASKHOST_PLUGIN(\"my-plugin\", \"0.1.0\"") != std::string::npos);
  CHECK(source.find("\"my-plugin.echo\"") != std::string::npos);
  CHECK(source.find("@NAME@") == std::string::npos);
  CHECK(out.str().find("wrote ") != std::string::npos);
}

TEST_CASE("new-plugin c writes a C99 project whose manifest matches its descriptor") {
  const fs::path dest = scratch("c");
  std::ostringstream out, err;
  REQUIRE(new_plugin_command("cplug", "c", dest, out, err) == 0);
  const std::string source = read(dest / "src/cplug.c");
  CHECK(source.find("TASKHOST_MANIFEST(\"cplug\", \"0.1.0\", \"cplug.echo\");") != std::string::npos);
  CHECK(source.find(".kind = \"cplug.echo\"") != std::string::npos);
  CHECK(read(dest / "CMakeLists.txt").find("project(cplug LANGUAGES C)") != std::string::npos);
  CHECK_FALSE(fs::exists(dest / "tests"));
}

TEST_CASE("new-plugin refuses bad names, unknown languages and a non-empty destination") {
  const fs::path dest = scratch("refused");
  std::ostringstream out, err;
  CHECK(new_plugin_command("Bad Name", "cpp", dest, out, err) == 2);
  CHECK(err.str().find("invalid name 'Bad Name'") != std::string::npos);
  CHECK(new_plugin_command("9lives", "c", dest, out, err) == 2);
  CHECK(new_plugin_command("a,b", "c", dest, out, err) == 2);
  CHECK(new_plugin_command("ok", "rust", dest, out, err) == 2);
  CHECK(err.str().find("unknown language 'rust'") != std::string::npos);
  CHECK_FALSE(fs::exists(dest));

  fs::create_directories(dest);
  std::ofstream(dest / "keep.txt") << "mine";
  std::ostringstream err2;
  CHECK(new_plugin_command("ok", "c", dest, out, err2) == 1);
  CHECK(err2.str().find("exists and is not an empty directory") != std::string::npos);
  CHECK(read(dest / "keep.txt") == "mine");
  CHECK_FALSE(fs::exists(dest / "CMakeLists.txt"));
}
