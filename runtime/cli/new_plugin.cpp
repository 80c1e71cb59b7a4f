#include "cli/new_plugin.hpp"

#include <fstream>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace taskhost::cli {
namespace {

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] < 'a' || name[0] > 'z') return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Replaces every @NAME@ in `text`.
std::string fill(std::string text, std::string_view name) {
  constexpr std::string_view kKey = "@NAME@";
  for (size_t at = text.find(kKey); at != std::string::npos; at = text.find(kKey, at + name.size())) {
    text.replace(at, kKey.size(), name);
  }
  return text;
}

constexpr std::string_view kCMakeCpp = R"tmpl(# @NAME@: a taskhost plugin (C++ SDK). Build against an installed SDK:
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=/where/the/sdk/is/installed && cmake --build build
#   ctest --test-dir build     # drives the plugin through the SDK's test kit
cmake_minimum_required(VERSION 3.20)
project(@NAME@ LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)

find_package(TaskhostPluginSDK 1.0 REQUIRED)

# Hidden visibility, only taskhost_plugin_entry exported, no "lib" prefix: build/@NAME@.so.
taskhost_add_plugin(@NAME@ SOURCES src/@NAME@.cpp)
target_compile_options(@NAME@ PRIVATE -Wall -Wextra)

enable_testing()
add_executable(@NAME@_test tests/@NAME@_test.cpp)
target_link_libraries(@NAME@_test PRIVATE taskhost::plugin_testkit)
target_compile_definitions(@NAME@_test PRIVATE PLUGIN_FILE="$<TARGET_FILE:@NAME@>")
add_dependencies(@NAME@_test @NAME@)
add_test(NAME @NAME@_test COMMAND @NAME@_test)
)tmpl";

constexpr std::string_view kCMakeC =
    R"tmpl(# @NAME@: a taskhost plugin in C99 against the C ABI. Build against an installed SDK:
#   cmake -S . -B build -DCMAKE_PREFIX_PATH=/where/the/sdk/is/installed && cmake --build build
cmake_minimum_required(VERSION 3.20)
project(@NAME@ LANGUAGES C)
set(CMAKE_C_STANDARD 99)

find_package(TaskhostPluginSDK 1.0 REQUIRED)

# Hidden visibility, only taskhost_plugin_entry exported, no "lib" prefix: build/@NAME@.so.
taskhost_add_plugin(@NAME@ SOURCES src/@NAME@.c)
target_compile_options(@NAME@ PRIVATE -Wall -Wextra)
)tmpl";

constexpr std::string_view kSourceCpp =
    R"tmpl(// @NAME@: one task kind, "@NAME@.echo", that reports progress and succeeds with its input.
// Add kinds by writing another TaskExecutor class and listing it in TASKHOST_PLUGIN below.
#include <taskhost/sdk.hpp>

namespace {

class EchoExecutor final : public taskhost::TaskExecutor {
 public:
  // Called on a host thread; must return promptly. Long work belongs on your own thread (keep a copy of
  // the sink; it stays valid); a taskhost::RunTable keeps those runs by task and joins them in release()
  // and in its destructor.
  taskhost::Status start(const taskhost::Task& task, taskhost::TaskSink& sink) override {
    sink.progress(1, 1, "steps", "echo");
    return sink.succeed(task.input());
  }

  // Required: wind the task down and end it through the sink. Here it already ended in start().
  taskhost::Status cancel(const taskhost::Task&, taskhost::TaskSink&) override { return taskhost::Status::Ok(); }
};

}  // namespace

TASKHOST_PLUGIN("@NAME@", "0.1.0",
                taskhost::kind<EchoExecutor>("@NAME@.echo", TH_ENCODING_JSON, "Succeeds with its input"));
)tmpl";

constexpr std::string_view kTestCpp =
    R"tmpl(// Loads build/@NAME@.so the way the host does and runs one task through it, with no host.
#include <taskhost/testkit.hpp>

#include <chrono>
#include <iostream>

int main() {
  taskhost::testkit::PluginUnderTest plugin(PLUGIN_FILE);
  const auto task = plugin.start("@NAME@.echo", R"json({"hello":"world"})json");
  const auto result = plugin.wait_terminal(task, std::chrono::seconds(5));
  if (!result || result->state != TH_STATE_SUCCEEDED || result->output != R"json({"hello":"world"})json") {
    std::cerr << "@NAME@.echo did not succeed with its input\n";
    return 1;
  }
  std::cout << "@NAME@.echo: ok\n";
  return 0;
}
)tmpl";

constexpr std::string_view kSourceC =
    R"tmpl(/* @NAME@: one task kind, "@NAME@.echo", in C99 against <taskhost/plugin.h>. It succeeds with its
 * input inside on_start (the host table may be called from inside any plugin call). */
#include <taskhost/plugin.h>

#include <stdlib.h>
#include <string.h>

struct th_executor {
  const th_host_api* host; /* host-owned; valid until on_destroy_executor returns */
};

static th_status create_executor(const th_host_api* host, th_executor** out, th_error_buf* err) {
  th_executor* self = (th_executor*)malloc(sizeof(*self));
  if (self == NULL) return th_error_set(err, TH_FAILED, "out of memory");
  self->host = host;
  *out = self;
  return TH_OK;
}

static void destroy_executor(th_executor* self) { free(self); }

static th_status start(th_executor* self, const th_task_info* info, th_error_buf* err) {
  th_result result;
  (void)err;
  memset(&result, 0, sizeof(result));
  result.struct_size = sizeof(result);
  result.state = TH_STATE_SUCCEEDED;
  result.output = info->input; /* host-owned bytes, valid for this call: the host copies them */
  self->host->complete(self->host->context, info->task, &result);
  return TH_OK;
}

static th_status cancel(th_executor* self, const th_task_info* info, th_error_buf* err) {
  (void)self;
  (void)info;
  (void)err;
  return TH_OK; /* the task already ended in start */
}

static const th_kind_descriptor echo_kind = {
    .struct_size = sizeof(th_kind_descriptor),
    .kind = "@NAME@.echo",
    .encoding = TH_ENCODING_JSON,
    .on_create_executor = create_executor,
    .on_destroy_executor = destroy_executor,
    .on_start = start,
    .on_cancel = cancel,
    .description = "Succeeds with its input",
};

static const th_kind_descriptor* const kinds[] = {&echo_kind};

static const th_plugin_descriptor plugin = {
    .struct_size = sizeof(th_plugin_descriptor),
    .abi_major = TASKHOST_ABI_MAJOR,
    .abi_minor = TASKHOST_ABI_MINOR,
    .name = "@NAME@",
    .version = "0.1.0",
    .kind_count = 1,
    .kinds = kinds,
};

/* Read by the host before it loads the file: keep name, version and kinds equal to `plugin`. */
TASKHOST_MANIFEST("@NAME@", "0.1.0", "@NAME@.echo");

TASKHOST_PLUGIN_ENTRY(&plugin)
)tmpl";

constexpr std::string_view kReadme = R"tmpl(# @NAME@

A taskhost plugin serving the task kind `@NAME@.echo`, which succeeds with its input.

## Build

The taskhost plugin SDK must be installed (from a taskhost checkout:
`cmake --install build --component plugin_sdk --prefix /opt/taskhost-sdk`).

    cmake -S . -B build -DCMAKE_PREFIX_PATH=/opt/taskhost-sdk
    cmake --build build

The plugin is `build/@NAME@.so`. It exports only `taskhost_plugin_entry`:

    nm -D --defined-only build/@NAME@.so

## Run

    taskhost inspect build/@NAME@.so     # what the file declares, read without loading it

Copy `build/@NAME@.so` into the host's plugins directory (or point the host at `build/`), then:

    taskhost serve --plugins build &
    taskhost submit @NAME@.echo --input '{"hello":"world"}' --wait

## Next steps

Read docs/plugin-guide.md in the taskhost repository: threading and ownership rules, long-running tasks
on your own threads, steering, input requests, checkpoints and re-attach, and what not to do.
)tmpl";

struct File {
  std::filesystem::path path;
  std::string text;
};

}  // namespace

int new_plugin_command(const std::string& name, const std::string& lang, const std::filesystem::path& dest,
                       std::ostream& out, std::ostream& err) {
  if (!valid_name(name)) {
    err << "taskhost new-plugin: invalid name '" << name
        << "': use lower-case letters, digits, '-' and '_', starting with a letter (at most 64)\n";
    return 2;
  }
  if (lang != "c" && lang != "cpp") {
    err << "taskhost new-plugin: unknown language '" << lang << "': use c or cpp\n";
    return 2;
  }
  std::error_code ec;
  if (std::filesystem::exists(dest, ec) &&
      (!std::filesystem::is_directory(dest, ec) || !std::filesystem::is_empty(dest, ec))) {
    err << "taskhost new-plugin: " << dest.string() << " exists and is not an empty directory\n";
    return 1;
  }

  std::vector<File> files;
  if (lang == "cpp") {
    files.push_back({"CMakeLists.txt", fill(std::string(kCMakeCpp), name)});
    files.push_back({std::filesystem::path("src") / (name + ".cpp"), fill(std::string(kSourceCpp), name)});
    files.push_back({std::filesystem::path("tests") / (name + "_test.cpp"), fill(std::string(kTestCpp), name)});
  } else {
    files.push_back({"CMakeLists.txt", fill(std::string(kCMakeC), name)});
    files.push_back({std::filesystem::path("src") / (name + ".c"), fill(std::string(kSourceC), name)});
  }
  files.push_back({"README.md", fill(std::string(kReadme), name)});

  for (const File& f : files) {
    const std::filesystem::path target = dest / f.path;
    std::filesystem::create_directories(target.parent_path(), ec);
    if (ec) {
      err << "taskhost new-plugin: cannot create " << target.parent_path().string() << ": " << ec.message() << "\n";
      return 1;
    }
    std::ofstream file(target, std::ios::binary | std::ios::trunc);
    file << f.text;
    file.close();
    if (!file) {
      err << "taskhost new-plugin: cannot write " << target.string() << "\n";
      return 1;
    }
    out << "wrote " << target.string() << "\n";
  }
  out << "next: cmake -S " << dest.string() << " -B " << (dest / "build").string()
      << " -DCMAKE_PREFIX_PATH=<sdk prefix> && cmake --build " << (dest / "build").string() << "\n";
  return 0;
}

}  // namespace taskhost::cli
