// A real Host over a private plugins directory, for tests: copies built plugin files in, scans, and
// builds assignments. Everything runs through the real loader, registry and router.
#pragma once

#include "host/host.hpp"
#include "recording_outbox.hpp"

#include "taskhost/v1/assignment.pb.h"

#include <google/protobuf/util/json_util.h>

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace taskhost::testing {

namespace fs = std::filesystem;

// A unique temporary directory, removed at the end of the scope.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("taskhost-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline fs::path fixture(const std::string& name) { return fs::path(TASKHOST_FIXTURE_DIR) / name; }
inline fs::path built_plugin(const std::string& name) { return fs::path(TASKHOST_PLUGIN_DIR) / name; }

// Copies `from` to `dir/as` through a temporary name and a rename, as an operator's deploy would.
inline void install_plugin_file(const fs::path& from, const fs::path& dir, const std::string& as) {
  const fs::path tmp = dir / ("." + as + ".tmp");
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, dir / as);
}

inline google::protobuf::Value json_value(const std::string& json) {
  google::protobuf::Value v;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &v);
  REQUIRE_MESSAGE(status.ok(), "bad JSON in test: " << json);
  return v;
}

// A Value as JSON text, for comparing outputs.
inline std::string value_json(const google::protobuf::Value& v) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(v, &out);
  return out;
}

inline v1::TaskAssignment assignment(const std::string& id, const std::string& kind, const std::string& input_json = "null",
                                     uint32_t attempt = 1, uint32_t heartbeat_secs = 0) {
  v1::TaskAssignment a;
  a.set_task_id(id);
  auto* ex = a.mutable_execute();
  ex->set_component_id(kind);
  *ex->mutable_input() = json_value(input_json);
  ex->set_attempt(attempt);
  a.set_heartbeat_interval_secs(heartbeat_secs);
  return a;
}

inline v1::SteeringMessage message(const std::string& task_id, const std::string& text, const std::string& reply_to = {}) {
  static std::atomic<int> n{0};
  v1::SteeringMessage m;
  m.set_message_id("m" + std::to_string(n++));
  m.set_task_id(task_id);
  m.add_parts()->set_text(text);
  m.set_in_reply_to(reply_to);
  return m;
}

inline v1::CancelRequest cancel_request(const std::string& task_id) {
  v1::CancelRequest c;
  c.set_task_id(task_id);
  c.set_reason("test");
  return c;
}

// Files under build/plugins (first-party plugins, samples) for a HostFixture to serve instead of the
// scripted fixture, e.g. HostFixture(BuiltPlugins{{"exec.so"}}).
struct BuiltPlugins {
  std::vector<std::string> files;
};

struct HostFixture {
  explicit HostFixture(tasks::RouterOptions options = {}, const std::string& plugin = "scripted-v1.so") {
    install_plugin_file(fixture(plugin), dir.path(), "scripted.so");
    open(std::move(options));
  }
  explicit HostFixture(const BuiltPlugins& plugins, tasks::RouterOptions options = {}) {
    for (const std::string& file : plugins.files) install_plugin_file(built_plugin(file), dir.path(), file);
    open(std::move(options));
  }
  tasks::Router& router() { return host->router(); }

  TempDir dir;
  RecordingOutbox outbox;  // declared before the host: it must outlive it
  std::unique_ptr<Host> host;

 private:
  void open(tasks::RouterOptions options) {
    HostOptions ho;
    ho.router = std::move(options);
    ho.plugins_dir = dir.path();
    host = std::make_unique<Host>(std::move(ho), outbox);
    REQUIRE_MESSAGE(host->initial_scan().errors.empty(),
                    (host->initial_scan().errors.empty() ? "" : host->initial_scan().errors.front()));
  }
};

}  // namespace taskhost::testing
