// exec.run end to end: the built exec.so loaded into a real Host, tasks assigned, steered and canceled
// through the real router, and what the host publishes checked on the outbox.
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "host_fixture.hpp"
#include "plugin_test_support.hpp"

using namespace taskhost;
using namespace taskhost::testing;
using namespace plugin_tests;

namespace {

constexpr char kExec[] = "exec.run";

HostFixture exec_host(tasks::RouterOptions options = {}) { return HostFixture(BuiltPlugins{{"exec.so"}}, options); }

double number(const google::protobuf::Value& v, const std::string& key) {
  const auto& fields = v.struct_value().fields();
  const auto it = fields.find(key);
  REQUIRE_MESSAGE(it != fields.end(), "no member '" << key << "'");
  return it->second.number_value();
}

// Everything published on `stream` for task `id`, in order.
std::string stream_text(RecordingOutbox& outbox, const std::string& id, const std::string& stream) {
  std::string text;
  for (const auto& e : outbox.events_of(id)) {
    if (e.has_output() && e.output().stream() == stream) text += e.output().delta();
  }
  return text;
}

// The data of the first outbound message of `id` with exactly this text.
std::optional<google::protobuf::Value> message_data(RecordingOutbox& outbox, const std::string& id,
                                                    const std::string& text) {
  for (const auto& e : outbox.events_of(id)) {
    if (e.has_message() && e.message().text() == text) return e.message().data();
  }
  return std::nullopt;
}

// The pid exec.run posts in its "started" message.
pid_t started_pid(RecordingOutbox& outbox, const std::string& id) {
  REQUIRE(outbox.wait_message(id, "started"));
  const auto data = message_data(outbox, id, "started");
  REQUIRE(data);
  return static_cast<pid_t>(number(*data, "pid"));
}

v1::SteeringMessage data_message(const std::string& task_id, const std::string& json) {
  static int n = 0;
  v1::SteeringMessage m;
  m.set_message_id("data-" + std::to_string(n++));
  m.set_task_id(task_id);
  *m.add_parts()->mutable_data() = json_value(json);
  return m;
}

bool stdout_has(HostFixture& f, const std::string& id, const std::string& text) {
  return eventually([&] { return contains(stream_text(f.outbox, id, "stdout"), text); }, 5s);
}

}  // namespace

TEST_CASE("exec.run streams stdout as output deltas and succeeds with the exit code and byte counts") {
  HostFixture f = exec_host();
  REQUIRE(f.router().assign(assignment("e1", kExec, R"({"argv":["/bin/echo","hello","world"]})")).accepted());
  const auto c = f.outbox.wait_completion("e1");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(number(c->output(), "exit_code") == 0);
  CHECK(number(c->output(), "stdout_bytes") == 12);
  CHECK(number(c->output(), "stderr_bytes") == 0);
  CHECK(c->plugin_version() == "1.0.0");
  CHECK(stream_text(f.outbox, "e1", "stdout") == "hello world\n");
  CHECK(stream_text(f.outbox, "e1", "stderr").empty());

  // "started" (with the pid) comes before any output.
  bool started_seen = false, output_before_started = false;
  for (const auto& e : f.outbox.events_of("e1")) {
    if (e.has_message() && e.message().text() == "started") started_seen = true;
    if (e.has_output() && !started_seen) output_before_started = true;
  }
  CHECK(started_seen);
  CHECK_FALSE(output_before_started);
}

TEST_CASE("a non-zero exit fails COMPONENT_FAILED naming the exit code; stderr is streamed too") {
  HostFixture f = exec_host();
  REQUIRE(f.router().assign(assignment("e3", kExec, R"({"argv":["sh","-c","echo oops >&2; exit 3"]})")).accepted());
  const auto c = f.outbox.wait_completion("e3");
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->error().code() == v1::COMPONENT_FAILED);
  CHECK(contains(c->error().message(), "'sh' exited with code 3"));
  CHECK(stream_text(f.outbox, "e3", "stderr") == "oops\n");
  // A failed completion has no output: the numbers come in the "exited" message.
  const auto exited = message_data(f.outbox, "e3", "exited");
  REQUIRE(exited);
  CHECK(number(*exited, "exit_code") == 3);
  CHECK(number(*exited, "stderr_bytes") == 5);
}

TEST_CASE("steering text reaches stdin while the program runs; data close_stdin ends its input") {
  HostFixture f = exec_host();
  REQUIRE(f.router().assign(assignment("cat", kExec, R"({"argv":["cat"]})")).accepted());
  started_pid(f.outbox, "cat");

  CHECK(f.router().deliver(message("cat", "ping\n")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(stdout_has(f, "cat", "ping\n"));
  // The echo came back while cat still runs: streamed, not flushed at exit.
  CHECK(f.router().snapshot("cat")->state == v1::RUNNING);
  CHECK(f.router().deliver(message("cat", "pong\n")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(stdout_has(f, "cat", "ping\npong\n"));

  const auto unknown = f.router().deliver(data_message("cat", R"({"close":true})"));
  CHECK(unknown.outcome() == v1::DeliveryReceipt::REJECTED);
  CHECK(contains(unknown.detail(), "'close'"));
  const auto empty = f.router().deliver(message("cat", ""));
  CHECK(empty.outcome() == v1::DeliveryReceipt::REJECTED);
  CHECK(contains(empty.detail(), "close_stdin"));

  CHECK(f.router().deliver(data_message("cat", R"({"close_stdin":true})")).outcome() ==
        v1::DeliveryReceipt::ACCEPTED);
  const auto c = f.outbox.wait_completion("cat");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(number(c->output(), "stdout_bytes") == 10);
  CHECK(stream_text(f.outbox, "cat", "stdout") == "ping\npong\n");
}

TEST_CASE("the input's stdin is written and then closed, so the program sees EOF") {
  HostFixture f = exec_host();
  REQUIRE(f.router().assign(assignment("in", kExec, R"({"argv":["cat"],"stdin":"abc"})")).accepted());
  const auto c = f.outbox.wait_completion("in");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(stream_text(f.outbox, "in", "stdout") == "abc");
}

TEST_CASE("cancel stops the program with SIGTERM; the task ends canceled within 2 s and the process is gone") {
  HostFixture f = exec_host();
  REQUIRE(f.router().assign(assignment("sl", kExec, R"({"argv":["sleep","30"]})")).accepted());
  const pid_t pid = started_pid(f.outbox, "sl");
  CHECK_FALSE(process_gone(pid));
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(f.router().cancel(cancel_request("sl")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  const auto c = f.outbox.wait_completion("sl", 5s);
  REQUIRE(c);
  CHECK(since(t0) < 2s);
  CHECK(c->state() == v1::CANCELED);
  CHECK(c->error().code() == v1::CANCELLED);
  CHECK(contains(c->error().message(), "signal 15"));
  CHECK(process_gone(pid));
}

TEST_CASE("cancel escalates to SIGKILL after the 1 s grace, for the program's whole process group") {
  HostFixture f = exec_host();
  // The shell and its background sleep both ignore SIGTERM; the shell prints the sleep's pid.
  REQUIRE(f.router()
              .assign(assignment("stubborn", kExec, R"({"argv":["sh","-c","trap '' TERM; sleep 30 & echo $!; wait"]})"))
              .accepted());
  const pid_t shell = started_pid(f.outbox, "stubborn");
  REQUIRE(stdout_has(f, "stubborn", "\n"));
  const pid_t grandchild = static_cast<pid_t>(std::stol(stream_text(f.outbox, "stubborn", "stdout")));
  REQUIRE_FALSE(process_gone(grandchild));

  const auto t0 = std::chrono::steady_clock::now();
  f.router().cancel(cancel_request("stubborn"));
  const auto c = f.outbox.wait_completion("stubborn", 5s);
  REQUIRE(c);
  const auto took = since(t0);
  CHECK(took >= 900ms);  // SIGTERM was ignored: only the SIGKILL after the grace ended it
  CHECK(took < 3s);
  CHECK(c->state() == v1::CANCELED);
  const auto exited = message_data(f.outbox, "stubborn", "exited");
  REQUIRE(exited);
  CHECK(number(*exited, "signal") == SIGKILL);
  CHECK(process_gone(shell));
  CHECK(eventually([&] { return process_dead(grandchild); }, 2s));
}

TEST_CASE("a timeout ends the task failed with TIMEOUT and stops the program") {
  HostFixture f = exec_host();
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(f.router().assign(assignment("to", kExec, R"({"argv":["sleep","30"],"timeout_ms":300})")).accepted());
  const pid_t pid = started_pid(f.outbox, "to");
  const auto c = f.outbox.wait_completion("to", 5s);
  REQUIRE(c);
  CHECK(since(t0) >= 300ms);
  CHECK(since(t0) < 3s);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->error().code() == v1::TIMEOUT);
  CHECK(contains(c->error().message(), "300 ms"));
  CHECK(process_gone(pid));
}

TEST_CASE("bad input is INVALID_INPUT naming the field; a program that cannot start is named") {
  HostFixture f = exec_host();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "'argv' is required"},
      {R"({"argv":[]})", "'argv' must be a non-empty array"},
      {R"({"argv":[""]})", "'argv[0]'"},
      {R"({"argv":["echo",3]})", "'argv[1]'"},
      {R"({"argv":"echo hi"})", "'argv'"},
      {R"({"argv":["no-such-program-taskhost"]})", "'no-such-program-taskhost' was not found in PATH"},
      {R"({"argv":["/nonexistent/prog"]})", "'/nonexistent/prog' does not exist"},
      {R"({"argv":["true"],"cwd":"/no/such/dir"})", "'cwd'"},
      {R"({"argv":["true"],"timeout_ms":0})", "'timeout_ms'"},
      {R"({"argv":["true"],"env":{"A":1}})", "'env.A'"},
      {R"({"argv":["true"],"timeout":5})", "unknown input member 'timeout'"},
      {R"("echo hi")", "input must be a JSON object"},
  };
  int n = 0;
  for (const auto& [input, expected] : cases) {
    CAPTURE(input);
    const std::string id = "bad" + std::to_string(n++);
    REQUIRE(f.router().assign(assignment(id, kExec, input)).accepted());
    const auto c = f.outbox.wait_completion(id);
    REQUIRE(c);
    CHECK(c->state() == v1::FAILED);
    CHECK(c->error().code() == v1::INVALID_INPUT);
    CHECK_MESSAGE(contains(c->error().message(), expected), c->error().message());
  }
}

TEST_CASE("the program gets a minimal environment plus env, never the host's, and runs in cwd") {
  ::setenv("TASKHOST_EXEC_TEST_SECRET", "leaked", 1);
  TempDir work;
  const std::string cwd = std::filesystem::canonical(work.path()).string();
  HostFixture f = exec_host();
  const std::string input = R"({"argv":["sh","-c","echo \"$GREETING|${TASKHOST_EXEC_TEST_SECRET-unset}|$PATH\"; pwd"],)"
                            R"("env":{"GREETING":"hi"},"cwd":")" + cwd + R"("})";
  REQUIRE(f.router().assign(assignment("env", kExec, input)).accepted());
  const auto c = f.outbox.wait_completion("env");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(stream_text(f.outbox, "env", "stdout") == "hi|unset|/usr/local/bin:/usr/bin:/bin\n" + cwd + "\n");
  ::unsetenv("TASKHOST_EXEC_TEST_SECRET");
}

TEST_CASE("exec.run is not re-attachable: a re-attached task fails orphaned and starts no program") {
  HostFixture f = exec_host();
  tasks::Resume resume{true, ""};
  REQUIRE(f.router().assign(assignment("ra", kExec, R"({"argv":["sleep","30"]})", 2), resume).accepted());
  const auto c = f.outbox.wait_completion("ra");
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->error().kind() == "orphaned");
  CHECK_FALSE(message_data(f.outbox, "ra", "started"));
}

TEST_CASE("a host shutdown releases a running task, and its program is killed before the release returns") {
  auto f = std::make_unique<HostFixture>(BuiltPlugins{{"exec.so"}});
  REQUIRE(f->router().assign(assignment("keep", kExec, R"({"argv":["sleep","30"]})")).accepted());
  const pid_t pid = started_pid(f->outbox, "keep");
  REQUIRE_FALSE(process_gone(pid));
  f->host.reset();
  CHECK(process_gone(pid));
  CHECK(f->outbox.completion_count("keep") == 0);
}

TEST_CASE("an executable file the kernel cannot run is INVALID_INPUT naming it, from posix_spawn's own error") {
  TempDir work;
  const std::filesystem::path junk = work.path() / "not-a-program";
  {
    std::ofstream out(junk);
    out << "\x01\x02 neither ELF nor #!";
  }
  std::filesystem::permissions(junk, std::filesystem::perms::owner_all);
  HostFixture f = exec_host();
  REQUIRE(f.router().assign(assignment("junk", kExec, R"({"argv":[")" + junk.string() + R"("]})")).accepted());
  const auto c = f.outbox.wait_completion("junk");
  REQUIRE(c);
  CHECK(c->error().code() == v1::INVALID_INPUT);
  CHECK_MESSAGE(contains(c->error().message(), "cannot start program '" + junk.string() + "'"), c->error().message());
}
