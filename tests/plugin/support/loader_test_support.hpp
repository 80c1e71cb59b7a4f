// Test support for the plugin-loading suites: a recording host API table, private temp directories,
// fixture paths, a look at this process's memfds, and a registry's status of one file. Everything the suites load is a real fixture .so
// from build/fixtures (see tests/plugin/CMakeLists.txt).
#pragma once

#include "plugin/host_scope.hpp"
#include "plugin/kind_executor.hpp"
#include "registry/kind_registry.hpp"

#include <taskhost/plugin.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

// What the fixture plugins reported through the host API. Like the router's, the table's context is a
// plugin::HostScope whose `host` is this (a PluginDirectory gives each generation a scope of its own).
struct th_host_context {
  std::mutex mutex;
  std::vector<std::string> logs;
  std::map<th_task_ref, std::pair<th_task_state, std::string>> completions;
};

namespace taskhost::plugin_test {

namespace fs = std::filesystem;

// A th_host_api table that records log lines and completions. Thread rule: safe from any thread, like
// the real sink. Must outlive every generation loaded with it.
class RecordingHost {
 public:
  RecordingHost() {
    api_.struct_size = sizeof(api_);
    api_.abi_major = TASKHOST_ABI_MAJOR;
    api_.abi_minor = TASKHOST_ABI_MINOR;
    scope_.host = &context_;
    api_.context = reinterpret_cast<th_host_context*>(&scope_);
    api_.set_state = [](th_host_context*, th_task_ref, th_task_state, const char*) -> th_status { return TH_OK; };
    api_.progress = [](th_host_context*, th_task_ref, double, double, const char*, const char*) -> th_status {
      return TH_OK;
    };
    api_.output = [](th_host_context*, th_task_ref, const char*, th_bytes) -> th_status { return TH_OK; };
    api_.post = [](th_host_context*, th_task_ref, const char*, th_bytes) -> th_status { return TH_OK; };
    api_.request_input = [](th_host_context*, th_task_ref, const char*, const char*, const char*) -> th_status {
      return TH_OK;
    };
    api_.append_artifact = [](th_host_context*, th_task_ref, const char*, const char*, const char*) -> th_status {
      return TH_OK;
    };
    api_.checkpoint = [](th_host_context*, th_task_ref, th_bytes) -> th_status { return TH_OK; };
    api_.heartbeat = [](th_host_context*, th_task_ref, double, const char*) -> th_status { return TH_OK; };
    api_.complete = [](th_host_context* scope, th_task_ref task, const th_result* result) -> th_status {
      th_host_context* ctx = plugin::host_scope(scope).host;
      std::lock_guard lock(ctx->mutex);
      const auto* data = reinterpret_cast<const char*>(result->output.data);
      ctx->completions[task] = {result->state, std::string(data ? data : "", result->output.size)};
      return TH_OK;
    };
    api_.log = [](th_host_context* scope, th_task_ref, int32_t, const char* message) {
      th_host_context* ctx = plugin::host_scope(scope).host;
      std::lock_guard lock(ctx->mutex);
      ctx->logs.emplace_back(message);
    };
  }
  RecordingHost(const RecordingHost&) = delete;
  RecordingHost& operator=(const RecordingHost&) = delete;

  const th_host_api& api() const { return api_; }

  bool logged(std::string_view needle) {
    std::lock_guard lock(context_.mutex);
    return std::any_of(context_.logs.begin(), context_.logs.end(),
                       [&](const std::string& line) { return line.find(needle) != std::string::npos; });
  }
  std::vector<std::string> logs() {
    std::lock_guard lock(context_.mutex);
    return context_.logs;
  }
  // The output of a task that completed succeeded, or nullopt.
  std::optional<std::string> output(th_task_ref task) {
    std::lock_guard lock(context_.mutex);
    const auto it = context_.completions.find(task);
    if (it == context_.completions.end() || it->second.first != TH_STATE_SUCCEEDED) return std::nullopt;
    return it->second.second;
  }

 private:
  th_host_context context_;
  plugin::HostScope scope_;
  th_host_api api_{};
};

// Starts task `ref` on `executor` with `input`; the echo fixture completes it inside the call.
inline plugin::CallResult start_task(const plugin::KindExecutor& executor, th_task_ref ref, const std::string& task_id,
                                     const std::string& input) {
  plugin::TaskCall call;
  call.task = ref;
  call.task_id = task_id.c_str();
  call.kind = executor.kind().c_str();
  call.input = {reinterpret_cast<const uint8_t*>(input.data()), input.size()};
  return executor.start(call);
}

// A private directory under the system temp dir, removed at the end of the scope.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() / ("taskhost-plugin-test-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter++) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// A built fixture plugin, e.g. fixture("loader-echo").
inline fs::path fixture(const std::string& target) { return fs::path(TASKHOST_FIXTURE_DIR) / (target + ".so"); }

inline std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Writes `bytes` to `file` in place (same inode), as a careless deploy would.
inline void write_bytes(const fs::path& file, std::string_view bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Copies fixture `target` into `dir` as `as` and returns the new path.
inline fs::path place(const fs::path& dir, const std::string& target, const std::string& as) {
  const fs::path to = dir / as;
  write_bytes(to, read_bytes(fixture(target)));
  return to;
}

// How many of this process's open fds are memfds whose name starts with "taskhost-" + `name_prefix`
// (the loader names them taskhost-PLUGIN-HASH12).
inline int open_memfds(const std::string& name_prefix) {
  const std::string prefix = "/memfd:taskhost-" + name_prefix;
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(entry.path(), ec);
    if (!ec && target.string().starts_with(prefix)) ++count;
  }
  return count;
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The entry for `file` in a registry's file list, or null.
inline const registry::FileStatus* status_of(const std::vector<registry::FileStatus>& files, const fs::path& file) {
  for (const auto& status : files) {
    if (status.file == file) return &status;
  }
  return nullptr;
}

}  // namespace taskhost::plugin_test
