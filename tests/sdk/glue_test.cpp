// The C++ SDK's glue (sdk.hpp + internal/) and the test kit's host rules, through a plugin defined in
// this file: what TASKHOST_PLUGIN emits, how exceptions and defaults cross the ABI, what TaskSink calls
// answer, and that the FakeHost enforces what the real host enforces.
#include <doctest/doctest.h>

#include <limits>

#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <taskhost/sdk.hpp>
#include <taskhost/testkit.hpp>

using taskhost::Message;
using taskhost::Status;
using taskhost::Task;
using taskhost::TaskSink;
using taskhost::testkit::EventType;
using taskhost::testkit::PluginUnderTest;
using taskhost::testkit::StartOptions;
using taskhost::testkit::TaskHandle;
using taskhost::testkit::TaskView;

namespace {

constexpr auto kWait = std::chrono::seconds(5);

// Throws from every method it can: each must come back as a status, never as an exception.
class Throwing final : public taskhost::TaskExecutor {
 public:
  Status start(const Task& task, TaskSink&) override {
    if (task.input() == "\"int\"") throw 42;
    throw std::runtime_error("start exploded");
  }
  Status cancel(const Task&, TaskSink&) override { throw 42; }
  Status deliver(const Task&, const Message&, TaskSink&) override { throw std::logic_error("deliver exploded"); }
  Status reconcile(const Task&, TaskSink&) override { return Status::Failed("remote job lost"); }
  bool can_reattach(const Task&) override { throw std::runtime_error("can_reattach exploded"); }
  Status detach(const Task&, TaskSink&) override { return Status::Unsupported("not today"); }
  void release(const Task&) override { throw std::runtime_error("release exploded"); }
};

// Overrides only what is required: everything else must be the protocol's default.
class Minimal final : public taskhost::TaskExecutor {
 public:
  Status cancel(const Task&, TaskSink&) override { return Status::Ok(); }
};

// Keeps the Task and sink of the last start, so the test can call the sink from outside any plugin call.
std::mutex g_mu;
std::optional<Task> g_task;

class Recording final : public taskhost::TaskExecutor {
 public:
  Status start(const Task& task, TaskSink&) override {
    std::lock_guard lock(g_mu);
    g_task = task;
    return Status::Ok();
  }
  Status cancel(const Task&, TaskSink& sink) override { return sink.canceled("by request"); }
  bool can_reattach(const Task&) override { return true; }
};

// Whether a descriptor function is set (doctest cannot print function pointers).
template <typename Fn>
bool present(Fn* fn) {
  return fn != nullptr;
}

Task last_task() {
  std::lock_guard lock(g_mu);
  REQUIRE(g_task.has_value());
  return *g_task;
}

}  // namespace

TASKHOST_PLUGIN("glue-test", "2.3.4",
                taskhost::kind<Throwing>("glue.throwing", TH_ENCODING_JSON, "throws", R"({"type":"string"})",
                                         R"({"type":"null"})"),
                taskhost::kind<Minimal>("glue.minimal"), taskhost::kind<Recording>("glue.recording"));

TEST_CASE("TASKHOST_PLUGIN: the manifest is plugin.h's format, from the same list as the descriptors") {
  const std::string manifest(taskhost_manifest_.data());
  CHECK(manifest == "taskhost-manifest 1\nabi=" + std::to_string(TASKHOST_ABI_MAJOR) + "." +
                        std::to_string(TASKHOST_ABI_MINOR) +
                        "\nname=glue-test\nversion=2.3.4\nkinds=glue.throwing,glue.minimal,glue.recording\n");
  const th_plugin_descriptor* d = taskhost_plugin_entry();
  REQUIRE(d != nullptr);
  CHECK(d->struct_size == sizeof(th_plugin_descriptor));
  CHECK(d->abi_major == TASKHOST_ABI_MAJOR);
  CHECK(d->abi_minor == TASKHOST_ABI_MINOR);
  CHECK(std::string(d->name) == "glue-test");
  CHECK(std::string(d->version) == "2.3.4");
  REQUIRE(d->kind_count == 3);
  CHECK(std::string(d->kinds[0]->kind) == "glue.throwing");
  CHECK(std::string(d->kinds[0]->description) == "throws");
  CHECK(std::string(d->kinds[0]->input_schema_json) == R"({"type":"string"})");
  CHECK(std::string(d->kinds[0]->output_schema_json) == R"({"type":"null"})");
  CHECK(d->kinds[1]->description == nullptr);
  for (size_t i = 0; i < d->kind_count; ++i) CHECK(d->kinds[i]->struct_size == sizeof(th_kind_descriptor));
  // The test kit also finds this manifest in the executable and checks it against the descriptor.
  CHECK_NOTHROW(PluginUnderTest{taskhost_plugin_entry});
}

TEST_CASE("TASKHOST_PLUGIN: optional functions are present exactly when the class declares them") {
  const th_plugin_descriptor* d = taskhost_plugin_entry();
  const th_kind_descriptor& throwing = *d->kinds[0];
  const th_kind_descriptor& minimal = *d->kinds[1];
  const th_kind_descriptor& recording = *d->kinds[2];
  CHECK(present(throwing.on_deliver));
  CHECK(present(throwing.on_reconcile));
  CHECK(present(throwing.on_can_reattach));
  CHECK(present(throwing.on_detach));
  CHECK_FALSE(present(minimal.on_deliver));
  CHECK_FALSE(present(minimal.on_reconcile));
  CHECK_FALSE(present(minimal.on_can_reattach));
  CHECK_FALSE(present(minimal.on_detach));
  // The re-attach group travels whole: can_reattach alone brings detach (answering Unsupported).
  CHECK(present(recording.on_can_reattach));
  CHECK(present(recording.on_detach));
  for (const th_kind_descriptor* k : {&throwing, &minimal, &recording}) {
    CHECK(present(k->on_create_executor));
    CHECK(present(k->on_destroy_executor));
    CHECK(present(k->on_start));
    CHECK(present(k->on_cancel));
    CHECK(present(k->on_release));
  }
}

TEST_CASE("an exception thrown by an executor method becomes TH_FAILED with its text, never a crash") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle task = plugin.start("glue.throwing", "{}");
  CHECK(task.start_status.code == TH_FAILED);
  CHECK(task.start_status.message == "start exploded");
  REQUIRE(plugin.view(task).result);
  CHECK(plugin.view(task).result->state == TH_STATE_FAILED);

  const TaskHandle other = plugin.start("glue.throwing", "\"int\"");
  CHECK(other.start_status.code == TH_FAILED);
  CHECK(other.start_status.message == "unknown exception");

  // Every other call, made directly on a fresh executor of the kind.
  const th_kind_descriptor& k = plugin.kind("glue.throwing");
  th_executor* self = nullptr;
  char text[128] = "";
  th_error_buf err{sizeof(th_error_buf), text, sizeof(text)};
  REQUIRE(k.on_create_executor(plugin.host().api(), &self, &err) == TH_OK);
  const std::string id = "direct";
  th_task_info info{};
  info.struct_size = sizeof(info);
  info.task = 0;  // task-less: what the glue logs lands in the host's plain log
  info.task_id = id.c_str();
  info.kind = "glue.throwing";
  info.attempt = 1;
  th_message msg{};
  msg.struct_size = sizeof(msg);
  msg.message_id = "m";
  msg.text = "hi";
  msg.in_reply_to = "";
  CHECK(k.on_cancel(self, &info, &err) == TH_FAILED);
  CHECK(std::string(text) == "unknown exception");
  CHECK(k.on_deliver(self, &info, &msg, &err) == TH_FAILED);
  CHECK(std::string(text) == "deliver exploded");
  CHECK(k.on_reconcile(self, &info, &err) == TH_FAILED);
  CHECK(std::string(text) == "remote job lost");
  CHECK(k.on_detach(self, &info, &err) == TH_UNSUPPORTED);
  CHECK(std::string(text) == "not today");
  CHECK(k.on_can_reattach(self, &info) == 0);  // threw: "no", and the reason goes to the host's log
  k.on_release(self, &info);                   // threw: swallowed and logged
  k.on_destroy_executor(self);
  bool logged_reattach = false, logged_release = false;
  for (const std::string& line : plugin.host().log_lines()) {
    logged_reattach |= line == "error: can_reattach threw: can_reattach exploded";
    logged_release |= line == "error: release threw: release exploded";
  }
  CHECK(logged_reattach);
  CHECK(logged_release);

  // Through the kit, the release after the failed start threw too: logged on that task, nothing escaped.
  bool logged_on_task = false;
  for (const auto& e : plugin.view(task).of(EventType::log))
    logged_on_task |= e.text == "release threw: release exploded";
  CHECK(logged_on_task);
  CHECK(plugin.host().violations().empty());
}

TEST_CASE("an executor whose constructor throws fails on_create_executor with the text") {
  struct Exploding final : taskhost::TaskExecutor {
    Exploding() { throw std::runtime_error("no resources"); }
    Status cancel(const Task&, TaskSink&) override { return Status::Ok(); }
  };
  taskhost::testkit::FakeHost host;
  th_executor* out = reinterpret_cast<th_executor*>(&host);  // must be reset to NULL
  char text[64] = "";
  th_error_buf err{sizeof(th_error_buf), text, sizeof(text)};
  CHECK(taskhost::internal::on_create_executor<Exploding>(host.api(), &out, &err) == TH_FAILED);
  CHECK(out == nullptr);
  CHECK(std::string(text) == "no resources");
}

TEST_CASE("defaults: start unsupported, deliver absent, reconcile a no-op, no re-attach") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle task = plugin.start("glue.minimal", "{}");
  CHECK(task.start_status.code == TH_UNSUPPORTED);
  CHECK(task.start_status.message == "this kind does not start tasks");
  CHECK(plugin.reconcile(task).ok());
  CHECK_FALSE(plugin.can_reattach(task));
  CHECK(plugin.detach(task).code == TH_UNSUPPORTED);
}

TEST_CASE("Task copies everything the host passed, and the sink outlives the call") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  StartOptions o;
  o.kind = "glue.recording";
  o.id = "job-7";
  o.input = R"({"x":1})";
  o.attempt = 3;
  o.reattach = true;
  o.checkpoint = std::string("cp\0bytes", 8);
  const TaskHandle handle = plugin.start(o);
  REQUIRE(handle.start_status.ok());
  const Task task = last_task();
  CHECK(task.id() == "job-7");
  CHECK(task.kind() == "glue.recording");
  CHECK(task.attempt() == 3);
  CHECK(task.input() == R"({"x":1})");
  CHECK(task.reattach());
  CHECK(task.checkpoint() == std::string("cp\0bytes", 8));
  CHECK(task.ref() == handle.ref);

  // Every sink call, made after start returned, from this (non-plugin) thread.
  const TaskSink& sink = task.sink();
  CHECK(sink.state(taskhost::RunState::running, "warming up").ok());
  CHECK(sink.progress(1, 4, "files", "copying").ok());
  CHECK(sink.output("stdout", "line\n").ok());
  CHECK(sink.post("note", R"({"k":true})").ok());
  CHECK(sink.append_artifact("report", "text/html", "file:///tmp/r.html").ok());
  CHECK(sink.checkpoint("step-1").ok());
  CHECK(sink.heartbeat(0.25, "a quarter").ok());
  CHECK(sink.log(taskhost::LogLevel::info, "hello log").ok());
  CHECK(sink.request_input("q1", "Proceed?").ok());
  CHECK(plugin.state(handle) == TH_STATE_WAITING_INPUT);
  CHECK(sink.state(taskhost::RunState::running).ok());
  CHECK(sink.succeed(R"({"done":true})").ok());

  // Terminal is final: a second end is refused and changes nothing.
  const Status again = sink.fail(TH_ERROR_COMPONENT_FAILED, "too late");
  CHECK(again.code == TH_TASK_ENDED);
  CHECK(again.message == "the task already ended; the write was dropped");
  CHECK(sink.progress(2, 4).code == TH_TASK_ENDED);

  const TaskView v = plugin.view(handle);
  REQUIRE(v.result);
  CHECK(v.result->state == TH_STATE_SUCCEEDED);
  CHECK(v.result->output == R"({"done":true})");
  CHECK(v.checkpoint == "step-1");
  const auto progress = v.of(EventType::progress);
  REQUIRE(progress.size() == 1);
  CHECK(progress[0].unit == "files");
  CHECK(progress[0].label == "copying");
  CHECK(v.of(EventType::output).at(0).data == "line\n");
  CHECK(v.of(EventType::post).at(0).data == R"({"k":true})");
  CHECK(v.of(EventType::artifact).at(0).media_type == "text/html");
  CHECK(v.of(EventType::heartbeat).at(0).fraction == 0.25);
  CHECK(v.of(EventType::log).at(0).text == "hello log");
  CHECK(v.of(EventType::input_request).at(0).schema.empty());  // empty schema crosses as NULL
  CHECK(v.rejected().size() == 2);
}

TEST_CASE("TaskSink: fail and canceled carry their code and reason; an unbound sink answers TH_FAILED") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const TaskHandle a = plugin.start("glue.recording", "{}");
  CHECK(last_task().sink().fail(TH_ERROR_RESOURCE_UNAVAILABLE, "disk full").ok());
  REQUIRE(plugin.view(a).result);
  CHECK(plugin.view(a).result->error_code == TH_ERROR_RESOURCE_UNAVAILABLE);
  CHECK(plugin.view(a).result->message == "disk full");

  const TaskHandle b = plugin.start("glue.recording", "{}");
  CHECK(plugin.cancel(b).ok());  // Recording::cancel ends it through the sink
  REQUIRE(plugin.view(b).result);
  CHECK(plugin.view(b).result->state == TH_STATE_CANCELED);
  CHECK(plugin.view(b).result->message == "by request");

  const Status unbound = TaskSink().post("x");
  CHECK(unbound.code == TH_FAILED);
  CHECK(unbound.message == "this TaskSink is not bound to a task");
}

TEST_CASE("test kit host rules: stale attempts, released tasks, unknown refs, bad states, non-JSON output") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  const th_host_api* api = plugin.host().api();

  // A superseded attempt is fenced.
  const TaskHandle first = plugin.start("glue.recording", "{}");
  const TaskSink old_sink = last_task().sink();
  const TaskHandle second = plugin.reattach(first);
  REQUIRE(second.start_status.ok());
  CHECK(old_sink.progress(1, 2).code == TH_STALE_ATTEMPT);
  CHECK(last_task().sink().progress(1, 2).ok());

  // Terminal states go through complete, not set_state; request_input needs an id.
  CHECK(api->set_state(api->context, second.ref, TH_STATE_SUCCEEDED, "") == TH_INVALID_ARGUMENT);
  CHECK(api->request_input(api->context, second.ref, "", "prompt", nullptr) == TH_INVALID_ARGUMENT);

  // Numbers no reader can use, and a schema that is not JSON, are refused as by the host (QA: the kit said
  // OK, so an author's tests passed while the host refused the same calls).
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(api->progress(api->context, second.ref, nan, 1, nullptr, nullptr) == TH_INVALID_ARGUMENT);
  CHECK(api->progress(api->context, second.ref, 1, std::numeric_limits<double>::infinity(), nullptr, nullptr) ==
        TH_INVALID_ARGUMENT);
  CHECK(api->heartbeat(api->context, second.ref, nan, nullptr) == TH_INVALID_ARGUMENT);
  CHECK(api->heartbeat(api->context, second.ref, 1.5, nullptr) == TH_INVALID_ARGUMENT);
  CHECK(api->heartbeat(api->context, second.ref, -1, "alive") == TH_OK);
  CHECK(api->request_input(api->context, second.ref, "q", "which?", "{not json") == TH_INVALID_ARGUMENT);
  CHECK(plugin.view(second).state == TH_STATE_RUNNING);  // the refused question asked nothing
  CHECK(api->request_input(api->context, second.ref, "q", "which?", R"({"type":"string"})") == TH_OK);
  CHECK(api->set_state(api->context, second.ref, TH_STATE_RUNNING, "on with it") == TH_OK);
  th_result weird{};
  weird.struct_size = sizeof(weird);
  weird.state = TH_STATE_RUNNING;
  CHECK(api->complete(api->context, second.ref, &weird) == TH_INVALID_ARGUMENT);

  // A JSON kind's message data and output must be JSON; a bad output fails the task, as in the host.
  CHECK(last_task().sink().post("x", "not json").code == TH_INVALID_ARGUMENT);
  CHECK(last_task().sink().succeed("Hello, Ada!").code == TH_INVALID_ARGUMENT);
  const auto result = plugin.wait_terminal(second, kWait);
  REQUIRE(result);
  CHECK(result->state == TH_STATE_FAILED);
  CHECK(result->error_code == TH_ERROR_WORKER_ERROR);

  // After release (wait_terminal released it) every write is refused as ended.
  CHECK(plugin.view(second).released);
  CHECK(last_task().sink().heartbeat().code == TH_TASK_ENDED);

  // A ref the host never issued.
  CHECK(api->progress(api->context, 424242, 0, 0, nullptr, nullptr) == TH_UNKNOWN_TASK);
  REQUIRE(plugin.host().violations().size() == 1);
  CHECK(plugin.host().violations()[0].find("unknown task ref 424242") != std::string::npos);
}

TEST_CASE("test kit: a re-attach the kind refuses ends the task failed as orphaned") {
  PluginUnderTest plugin(taskhost_plugin_entry);
  StartOptions o;
  o.kind = "glue.minimal";  // no re-attach group
  o.reattach = true;
  const TaskHandle task = plugin.start(o);
  CHECK(task.start_status.code == TH_FAILED);
  REQUIRE(plugin.view(task).result);
  CHECK(plugin.view(task).result->error_code == TH_ERROR_WORKER_ERROR);
}
