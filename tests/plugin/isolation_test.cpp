// isolation = "process" end to end: a real Host, the real scripted fixture .so loaded by the real
// taskhost-plugin-child, every call and sink call over the socket; and what isolation is for, a plugin
// that aborts, which ends only its own process and its own running tasks.
#include "eventually.hpp"
#include "host_fixture.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

using namespace taskhost;
using namespace taskhost::testing;
using namespace std::chrono_literals;

namespace {

plugin::IsolationPolicy isolate(std::map<std::string, plugin::Isolation> by_file,
                                plugin::Isolation by_default = plugin::Isolation::in_process) {
  plugin::IsolationPolicy policy;
  policy.by_default = by_default;
  policy.by_file = std::move(by_file);
  policy.process.program = fs::path(TASKHOST_BIN_DIR) / "taskhost-plugin-child";
  return policy;
}

// A host over `dir` with `isolation`; the scan's errors are the caller's to check.
struct IsolatedHost {
  IsolatedHost(const fs::path& dir, plugin::IsolationPolicy isolation) {
    HostOptions options;
    options.plugins_dir = dir;
    options.isolation = std::move(isolation);
    host = std::make_unique<Host>(std::move(options), outbox);
  }
  tasks::Router& router() { return host->router(); }
  RecordingOutbox outbox;  // outlives the host
  std::unique_ptr<Host> host;
};

// The scripted fixture isolated as scripted.so, next to the in-process "hold" fixture (hold.forever).
struct ScriptedIsolated {
  explicit ScriptedIsolated(std::chrono::milliseconds call_timeout = 30s) {
    install_plugin_file(fixture("scripted-v1.so"), dir.path(), "scripted.so");
    install_plugin_file(fixture("hold.so"), dir.path(), "hold.so");
    plugin::IsolationPolicy policy = isolate({{"scripted.so", plugin::Isolation::process}});
    policy.process.call_timeout = call_timeout;
    host = std::make_unique<IsolatedHost>(dir.path(), std::move(policy));
    REQUIRE_MESSAGE(host->host->initial_scan().errors.empty(),
                    (host->host->initial_scan().errors.empty() ? "" : host->host->initial_scan().errors.front()));
  }
  tasks::Router& router() { return host->router(); }
  RecordingOutbox& outbox() { return host->outbox; }

  // The pid of the process running the plugin, asked of the plugin itself through a held task.
  pid_t plugin_pid(const std::string& task_id) {
    router().deliver(message(task_id, "pid"));
    const auto text = outbox().wait_message(task_id, "pid:");
    REQUIRE(text);
    return static_cast<pid_t>(std::stol(text->substr(4)));
  }

  TempDir dir;
  std::unique_ptr<IsolatedHost> host;
};

// Gone: no such process, or a zombie its new parent has not reaped yet.
bool process_gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

// A crash is seen when the dying process's socket closes; a sanitizer build on a loaded machine can take
// seconds to get there.
constexpr auto kCrashSeen = 30s;

// The plugin processes these tests crash write no core files into the build tree.
const bool no_core_files = [] {
  const rlimit none{0, 0};
  return ::setrlimit(RLIMIT_CORE, &none) == 0;
}();

}  // namespace

TEST_CASE("an isolated plugin runs tasks as it does in-process: events, steering, input, progress, cancel") {
  ScriptedIsolated f;
  REQUIRE(f.router().assign(assignment("i1", "test.instant", R"({"x":1})")).accepted());
  auto c = f.outbox().wait_completion("i1");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(value_json(c->output()) == R"({"x":1})");

  REQUIRE(f.router().assign(assignment("h1", "test.hold")).accepted());
  REQUIRE(f.outbox().wait_state("h1", v1::RUNNING));
  const pid_t pid = f.plugin_pid("h1");
  CHECK(pid != ::getpid());  // the plugin code really runs elsewhere

  f.router().deliver(message("h1", "ask"));
  REQUIRE(f.outbox().wait_state("h1", v1::WAITING_INPUT));
  f.router().deliver(message("h1", "blue", "q1"));
  CHECK(f.outbox().wait_message("h1", "answer:blue"));
  f.router().deliver(message("h1", "progress"));
  CHECK(eventually([&] {
    for (const auto& e : f.outbox().events_of("h1")) {
      if (e.has_progress() && e.progress().current() == 3 && e.progress().unit() == "items") return true;
    }
    return false;
  }));
  f.router().deliver(message("h1", "finish"));
  c = f.outbox().wait_completion("h1");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(value_json(c->output()) == R"("finished attempt 1")");

  // A worker thread of the plugin's own reporting progress and checkpoints from outside any call.
  REQUIRE(f.router().assign(assignment("t1", "test.thread", "5")).accepted());
  c = f.outbox().wait_completion("t1");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(f.outbox().checkpoint("t1") == "5");

  REQUIRE(f.router().assign(assignment("k1", "test.hold")).accepted());
  REQUIRE(f.outbox().wait_state("k1", v1::RUNNING));
  f.router().cancel(cancel_request("k1"));
  c = f.outbox().wait_completion("k1");
  REQUIRE(c);
  CHECK(c->state() == v1::CANCELED);

  // The plugin's start error and its text cross back as they would in-process.
  REQUIRE(f.router().assign(assignment("r1", "test.hold", R"("reject-start")")).accepted());
  c = f.outbox().wait_completion("r1");
  REQUIRE(c);
  CHECK(c->error().code() == v1::INVALID_INPUT);
  CHECK(c->error().message().find("input says reject-start") != std::string::npos);
}

TEST_CASE("a plugin that aborts fails only the task whose call crashed it; tasks beside it are re-attached") {
  ScriptedIsolated f;
  REQUIRE(f.router().assign(assignment("a1", "test.hold")).accepted());
  REQUIRE(f.router().assign(assignment("a2", "test.hold")).accepted());      // re-attachable, beside the crash
  REQUIRE(f.router().assign(assignment("p1", "test.plain")).accepted());     // cannot re-attach
  REQUIRE(f.router().assign(assignment("n1", "test.hold", R"("no-reattach")")).accepted());  // its plugin says no
  REQUIRE(f.router().assign(assignment("other", "hold.forever")).accepted());  // in-process plugin
  for (const std::string id : {"a1", "a2", "p1", "n1", "other"}) REQUIRE_MESSAGE(f.outbox().wait_state(id, v1::RUNNING), id);
  // Waited for: no call of a2 may still be running when a1 crashes the process.
  REQUIRE(f.router().deliver(message("a2", "ckpt:step-7"), 10s).outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(f.outbox().checkpoint("a2") == "step-7");
  const pid_t first = f.plugin_pid("a1");

  f.router().deliver(message("a1", "abort"));
  // The suspect (its deliver call was running) and the task that cannot re-attach fail, saying which they were.
  for (const std::string id : {"a1", "p1"}) {
    const auto c = f.outbox().wait_completion(id, kCrashSeen);
    REQUIRE_MESSAGE(c, id);
    CHECK(c->state() == v1::FAILED);
    CHECK(c->error().code() == v1::WORKER_ERROR);
    CHECK_MESSAGE(c->error().message().find("killed by signal 6") != std::string::npos, c->error().message());
    CHECK_MESSAGE(c->error().message().find("'scripted'") != std::string::npos, c->error().message());
    const std::string said = id == "a1" ? "during this task's deliver call" : "while the task ran (no call of this task";
    CHECK_MESSAGE(c->error().message().find(said) != std::string::npos, c->error().message());
  }
  CHECK(eventually([&] { return process_gone(first); }));  // reaped, not a zombie

  // The task beside the crash comes back in the plugin's next process: attempt 2, from its checkpoint,
  // and runs on to its end there. Between the two, its events said why it waits.
  CHECK(f.outbox().wait_message("a2", "resumed:step-7:attempt=2", kCrashSeen));
  CHECK(f.outbox().completion_count("a2") == 0);
  CHECK(eventually([&] {
    for (const auto& e : f.outbox().events_of("a2")) {
      if (e.has_state() && e.state().detail().find("re-attached once the plugin runs again") != std::string::npos) return true;
    }
    return false;
  }));
  CHECK(f.plugin_pid("a2") != first);
  f.router().deliver(message("a2", "finish"));
  auto c = f.outbox().wait_completion("a2");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(value_json(c->output()) == R"("finished attempt 2")");

  // One whose plugin declines the re-attach (can_reattach) fails, as any task that cannot be resumed.
  c = f.outbox().wait_completion("n1", kCrashSeen);
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->error().kind() == "orphaned");
  CHECK_MESSAGE(c->error().message().find("killed by signal 6 (Aborted) while the task ran (none of its calls was "
                                          "running); the plugin declined to re-attach it") != std::string::npos,
                c->error().message());

  // The other plugin's task never noticed.
  const auto other = f.router().snapshot("other");
  REQUIRE(other);
  CHECK(other->state == v1::RUNNING);

  // The plugin serves new tasks, in the new process.
  REQUIRE(f.router().assign(assignment("after", "test.instant", "7")).accepted());
  c = f.outbox().wait_completion("after");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  REQUIRE(f.router().assign(assignment("a3", "test.hold")).accepted());
  REQUIRE(f.outbox().wait_state("a3", v1::RUNNING));
  CHECK(f.plugin_pid("a3") != first);

  f.router().cancel(cancel_request("other"));
  CHECK(f.outbox().wait_completion("other"));
}

TEST_CASE("a task beside crash after crash is re-attached until max_plugin_crashes, then fails") {
  ScriptedIsolated f;  // max_plugin_crashes: 2, the default
  REQUIRE(f.router().assign(assignment("steady", "test.hold")).accepted());
  REQUIRE(f.outbox().wait_state("steady", v1::RUNNING));
  int tries = 0;
  for (int crash = 1; crash <= 2; ++crash) {
    std::string culprit;
    REQUIRE(eventually(  // a start while the plugin is still coming back from the last crash fails: again
        [&] {
          culprit = "crasher-" + std::to_string(++tries);
          if (!f.router().assign(assignment(culprit, "test.hold")).accepted()) return false;
          f.router().deliver(message(culprit, "pid"));  // answered once a process runs it
          return f.outbox().wait_message(culprit, "pid:", 2s).has_value();
        },
        kCrashSeen, 100ms));
    f.router().deliver(message(culprit, "abort"));
    REQUIRE(f.outbox().wait_completion(culprit, kCrashSeen));
    if (crash == 1) CHECK(f.outbox().wait_message("steady", "resumed::attempt=2", kCrashSeen));
  }
  const auto c = f.outbox().wait_completion("steady", kCrashSeen);
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->attempt() == 2);
  CHECK(c->error().kind() == "plugin_crash");
  CHECK_MESSAGE(c->error().message().find("has ended 2 times while it ran") != std::string::npos, c->error().message());
  CHECK_MESSAGE(c->error().message().find("max_plugin_crashes = 2") != std::string::npos, c->error().message());
}

namespace {

// The scripted fixture isolated with `policy`, running two held tasks: "crasher", to be made to abort its
// process, and "beside", a re-attachable task that only runs beside that crash.
struct CrashBeside {
  explicit CrashBeside(plugin::IsolationPolicy policy) {
    install_plugin_file(fixture("scripted-v1.so"), dir.path(), "scripted.so");
    host = std::make_unique<IsolatedHost>(dir.path(), std::move(policy));
    REQUIRE(host->host->initial_scan().errors.empty());
    for (const std::string id : {"crasher", "beside"}) {
      REQUIRE(router().assign(assignment(id, "test.hold")).accepted());
      REQUIRE(outbox().wait_state(id, v1::RUNNING));
    }
  }
  tasks::Router& router() { return host->router(); }
  RecordingOutbox& outbox() { return host->outbox; }
  void crash() {
    router().deliver(message("crasher", "abort"));
    REQUIRE(outbox().wait_completion("crasher", kCrashSeen));
    REQUIRE(waits("beside"));
  }
  // The task's events say it waits for the plugin's next process.
  bool waits(const std::string& id) {
    return eventually([&] {
      for (const auto& e : outbox().events_of(id)) {
        if (e.has_state() && e.state().detail().find("re-attached once the plugin runs again") != std::string::npos) {
          return true;
        }
      }
      return false;
    }, kCrashSeen);
  }

  TempDir dir;
  std::unique_ptr<IsolatedHost> host;
};

}  // namespace

TEST_CASE("a task waiting for its plugin's next process stays on its own version across a reload") {
  plugin::IsolationPolicy policy = isolate({{"scripted.so", plugin::Isolation::process}});
  policy.process.first_backoff = 2000ms;  // time to reload while no process runs
  CrashBeside f(std::move(policy));
  f.crash();
  // Version 2 replaces the file while the task waits; the reload does not migrate tasks.
  install_plugin_file(fixture("scripted-v2.so"), f.dir.path(), "scripted.so");
  REQUIRE(f.host->host->reload().errors.empty());
  CHECK(f.outbox().wait_message("beside", "resumed::attempt=2", kCrashSeen));
  const auto s = f.router().snapshot("beside");
  REQUIRE(s);
  CHECK(s->state == v1::RUNNING);
  CHECK(s->plugin_version == "1.0.0");  // the version that started it, in its new process
  // New tasks get version 2.
  REQUIRE(f.router().assign(assignment("new", "test.hold")).accepted());
  REQUIRE(f.outbox().wait_state("new", v1::RUNNING));
  CHECK(f.router().snapshot("new")->plugin_version == "2.0.0");
}

TEST_CASE("a task beside a crash fails when its plugin cannot be started again") {
  // A copy of the plugin process program that the test takes away after the first process started.
  TempDir programs;
  const fs::path program = programs.path() / "taskhost-plugin-child";
  fs::copy_file(fs::path(TASKHOST_BIN_DIR) / "taskhost-plugin-child", program);
  plugin::IsolationPolicy policy = isolate({{"scripted.so", plugin::Isolation::process}});
  policy.process.program = program;
  CrashBeside f(std::move(policy));
  fs::remove(program);
  f.crash();
  const auto c = f.outbox().wait_completion("beside", kCrashSeen);
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->error().code() == v1::WORKER_ERROR);
  CHECK_MESSAGE(c->error().message().find("while the task ran (none of its calls was running); the plugin could not "
                                          "be started again") != std::string::npos,
                c->error().message());
  CHECK_MESSAGE(c->error().message().find(program.string()) != std::string::npos, c->error().message());
}

namespace {

// A plugin process program that counts its starts in a file beside it and exits at once (before its
// hello) on starts first_failing..last_failing; every other start runs the real program.
fs::path program_failing_starts(const fs::path& dir, int first_failing, int last_failing) {
  const fs::path script = dir / "flaky-plugin-child";
  std::ofstream(script) << "#!/bin/sh\n"
                        << "count=\"" << (dir / "starts").string() << "\"\n"
                        << "n=$(( $(cat \"$count\" 2>/dev/null || echo 0) + 1 ))\n"
                        << "echo \"$n\" > \"$count\"\n"
                        << "if [ \"$n\" -ge " << first_failing << " ] && [ \"$n\" -le " << last_failing
                        << " ]; then exit 3; fi\n"
                        << "exec \"" << (fs::path(TASKHOST_BIN_DIR) / "taskhost-plugin-child").string()
                        << "\" \"$@\"\n";
  fs::permissions(script, fs::perms::owner_all);
  return script;
}

}  // namespace

TEST_CASE("a task beside a crash waits through two failed restarts and fails on the third") {
  // Start 1 is the first process; the restarts after the crash are starts 2, 3, 4, ...
  SUBCASE("two restarts fail, the third runs: the task is re-attached") {
    TempDir programs;
    plugin::IsolationPolicy policy = isolate({{"scripted.so", plugin::Isolation::process}});
    policy.process.program = program_failing_starts(programs.path(), 2, 3);
    CrashBeside f(std::move(policy));
    f.crash();
    CHECK(f.outbox().wait_message("beside", "resumed::attempt=2", kCrashSeen));
    CHECK(f.outbox().completion_count("beside") == 0);
    f.router().deliver(message("beside", "finish"));
    const auto c = f.outbox().wait_completion("beside");
    REQUIRE(c);
    CHECK(c->state() == v1::SUCCEEDED);
  }
  SUBCASE("three restarts fail: the task fails, and the fourth serves new tasks") {
    TempDir programs;
    plugin::IsolationPolicy policy = isolate({{"scripted.so", plugin::Isolation::process}});
    policy.process.program = program_failing_starts(programs.path(), 2, 4);
    CrashBeside f(std::move(policy));
    f.crash();
    const auto c = f.outbox().wait_completion("beside", kCrashSeen);
    REQUIRE(c);
    CHECK(c->state() == v1::FAILED);
    CHECK_MESSAGE(c->error().message().find("the plugin could not be started again") != std::string::npos,
                  c->error().message());
    // A start before the fourth process runs waits for it.
    REQUIRE(f.router().assign(assignment("after", "test.instant", "1")).accepted());
    const auto done = f.outbox().wait_completion("after", kCrashSeen);
    REQUIRE(done);
    CHECK_MESSAGE(done->state() == v1::SUCCEEDED, done->error().message());
  }
}

TEST_CASE("while its plugin process is down, a task's steering is held for its re-attach and a cancel ends it") {
  plugin::IsolationPolicy policy = isolate({{"scripted.so", plugin::Isolation::process}});
  policy.process.first_backoff = 3000ms;  // time to steer and cancel while no process runs
  CrashBeside f(std::move(policy));
  REQUIRE(f.router().assign(assignment("steered", "test.hold")).accepted());
  REQUIRE(f.outbox().wait_state("steered", v1::RUNNING));
  // Canceled before the crash, by a plugin that lets it run on: the crash ends it, canceled.
  REQUIRE(f.router().assign(assignment("stubborn", "test.hold", R"("ignore-cancel")")).accepted());
  REQUIRE(f.outbox().wait_state("stubborn", v1::RUNNING));
  REQUIRE(f.router().cancel(cancel_request("stubborn"), 10s).outcome() == v1::DeliveryReceipt::ACCEPTED);
  f.crash();
  REQUIRE(f.waits("steered"));
  const auto stubborn = f.outbox().wait_completion("stubborn", 2s);  // not at the deadline (10 s)
  REQUIRE(stubborn);
  CHECK(stubborn->state() == v1::CANCELED);
  CHECK_MESSAGE(stubborn->error().message().find("was canceled, and then the plugin process") != std::string::npos,
                stubborn->error().message());

  // A message for the attempt that ended with the process cannot reach it.
  v1::SteeringMessage old_attempt = message("steered", "pid");
  old_attempt.set_attempt(1);
  CHECK(f.router().deliver(old_attempt, 10s).outcome() == v1::DeliveryReceipt::REJECTED);

  // Held, not refused: the re-attached attempt gets it after its start.
  const v1::DeliveryReceipt held = f.router().deliver(message("steered", "pid"), 10s);
  CHECK(held.outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(held.queued());
  CHECK_MESSAGE(held.detail().find("re-attached in its plugin's next process") != std::string::npos, held.detail());

  // Nobody wants a canceled task re-attached, and no process can wind it down: it ends now.
  const v1::DeliveryReceipt canceled = f.router().cancel(cancel_request("beside"), 10s);
  CHECK(canceled.outcome() == v1::DeliveryReceipt::ACCEPTED);
  const auto c = f.outbox().wait_completion("beside", 2s);  // not at the cancel deadline, nor the restart
  REQUIRE(c);
  CHECK(c->state() == v1::CANCELED);
  CHECK(c->attempt() == 1);
  CHECK_MESSAGE(c->error().message().find("canceled while its plugin process was down") != std::string::npos,
                c->error().message());

  const auto pid = f.outbox().wait_message("steered", "pid:", kCrashSeen);
  REQUIRE(pid);
  CHECK(f.outbox().wait_message("steered", "resumed::attempt=2"));
  CHECK_FALSE(f.outbox().wait_message("beside", "resumed:", 200ms));
}

TEST_CASE("a task assigned while its plugin process is being started again waits for it instead of failing") {
  // QA: every start in that window (up to the restart backoff, 10 s for a plugin that keeps crashing)
  // failed at once, COMPONENT_FAILED "the plugin process ... is being started again", never having run.
  plugin::IsolationPolicy policy = isolate({{"scripted.so", plugin::Isolation::process}});
  policy.process.first_backoff = 1500ms;  // a window no scheduling luck closes
  CrashBeside f(std::move(policy));
  f.crash();
  const auto assigned = std::chrono::steady_clock::now();
  REQUIRE(f.router().assign(assignment("in-the-window", "test.instant", "7")).accepted());
  const auto c = f.outbox().wait_completion("in-the-window", kCrashSeen);
  REQUIRE(c);
  CHECK_MESSAGE(c->state() == v1::SUCCEEDED, c->error().message());
  CHECK(c->attempt() == 1);
  CHECK(std::chrono::steady_clock::now() - assigned >= 500ms);  // it did wait for the process: it was down
  CHECK(f.outbox().wait_message("beside", "resumed::attempt=2"));
}

TEST_CASE("a task whose start crashes its plugin fails, and the plugin serves the next task") {
  ScriptedIsolated f;
  REQUIRE(f.router().assign(assignment("boom", "test.hold", R"("abort-start")")).accepted());
  const auto c = f.outbox().wait_completion("boom", kCrashSeen);
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK_MESSAGE(c->error().message().find("killed by signal 6") != std::string::npos, c->error().message());
  CHECK_MESSAGE(c->error().message().find("during this task's start call") != std::string::npos, c->error().message());
  CHECK(c->error().code() == v1::WORKER_ERROR);  // the process's end, as for running tasks, not a refused start
  CHECK(f.outbox().completion_count("boom") == 1);  // one terminal record, although the start call failed too
  REQUIRE(eventually(
      [&] {
        static int n = 0;
        const std::string id = "next-" + std::to_string(n++);
        if (!f.router().assign(assignment(id, "test.instant", "1")).accepted()) return false;
        const auto done = f.outbox().wait_completion(id);
        return done && done->state() == v1::SUCCEEDED;
      },
      kCrashSeen, 50ms));
}

TEST_CASE("a crash is seen although a process the plugin forked still holds the socket") {
  ScriptedIsolated f;
  REQUIRE(f.router().assign(assignment("f1", "test.hold")).accepted());
  REQUIRE(f.outbox().wait_state("f1", v1::RUNNING));
  const auto before = std::chrono::steady_clock::now();
  f.router().deliver(message("f1", "fork-abort"));
  const auto c = f.outbox().wait_completion("f1", kCrashSeen);
  REQUIRE(c);
  CHECK_MESSAGE(c->error().message().find("killed by signal 6") != std::string::npos, c->error().message());
  CHECK(std::chrono::steady_clock::now() - before < 10s);  // not when the fork exits, 15 s later
  // What the plugin process started ends with it (its process group).
  const auto forked = f.outbox().wait_message("f1", "forked:");
  REQUIRE(forked);
  const auto forked_pid = static_cast<pid_t>(std::stol(forked->substr(7)));
  CHECK(eventually([&] { return process_gone(forked_pid); }, 5s));
}

TEST_CASE("a call that does not return within the call timeout kills its process; the task fails, the host goes on") {
  ScriptedIsolated f(1s);
  TempDir gate;  // never created: the start blocks (the fixture gives up after 20 s)
  const std::string input = "\"block-start:" + (gate.path() / "never").string() + "\"";
  REQUIRE(f.router().assign(assignment("stuck", "test.instant", input)).accepted());
  const auto c = f.outbox().wait_completion("stuck", kCrashSeen);
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->error().code() == v1::WORKER_ERROR);
  CHECK_MESSAGE(c->error().message().find("killed by signal 9") != std::string::npos, c->error().message());
  REQUIRE(eventually(
      [&] {
        static int n = 0;
        const std::string id = "free-" + std::to_string(n++);
        if (!f.router().assign(assignment(id, "test.instant", "3")).accepted()) return false;
        const auto done = f.outbox().wait_completion(id);
        return done && done->state() == v1::SUCCEEDED;
      },
      kCrashSeen, 50ms));
}

TEST_CASE("a plugin that breaks its socket (a frame size, then nothing) is killed, not waited on forever") {
  ScriptedIsolated f;
  REQUIRE(f.router().assign(assignment("w1", "test.hold")).accepted());
  REQUIRE(f.router().assign(assignment("w2", "test.hold")).accepted());
  REQUIRE(f.outbox().wait_state("w1", v1::RUNNING));
  REQUIRE(f.outbox().wait_state("w2", v1::RUNNING));
  f.router().deliver(message("w1", "stall-frame"));
  const auto c = f.outbox().wait_completion("w1", kCrashSeen);
  REQUIRE(c);
  CHECK(c->error().code() == v1::WORKER_ERROR);
  CHECK_MESSAGE(c->error().message().find("killed by signal 9") != std::string::npos, c->error().message());
  // The task beside it is re-attached in the next process.
  CHECK(f.outbox().wait_message("w2", "resumed::attempt=2", kCrashSeen));
}

TEST_CASE("the host's shutdown ends the plugin process, after its executors were destroyed") {
  pid_t pid = -1;
  {
    ScriptedIsolated f;
    REQUIRE(f.router().assign(assignment("s1", "test.hold")).accepted());
    REQUIRE(f.outbox().wait_state("s1", v1::RUNNING));
    pid = f.plugin_pid("s1");
    CHECK(!process_gone(pid));
  }
  CHECK(process_gone(pid));  // exited and reaped by the time the host is gone
}

TEST_CASE("a sink call from a plugin thread that the executor's destroy is joining answers TH_TASK_ENDED, isolated as in-process") {
  // QA: isolated, the call answered TH_FAILED, which tells the plugin something failed that a retry might
  // mend; a thread that retries then holds up the destroy joining it. Its task has ended either way.
  for (const auto isolation : {plugin::Isolation::in_process, plugin::Isolation::process}) {
    CAPTURE(static_cast<int>(isolation));
    TempDir dir;
    const fs::path plugins = dir.path() / "plugins";
    fs::create_directories(plugins);
    install_plugin_file(fixture("scripted-v1.so"), plugins, "scripted.so");
    const fs::path probe = dir.path() / "probe";
    {
      IsolatedHost f(plugins, isolate({{"scripted.so", isolation}}));
      REQUIRE(f.host->initial_scan().errors.empty());
      REQUIRE(f.router().assign(assignment("p1", "test.thread", "\"probe-at-destroy:" + probe.string() + "\"")).accepted());
      const auto c = f.outbox.wait_completion("p1");
      REQUIRE(c);
      CHECK(c->state() == v1::SUCCEEDED);
      CHECK_FALSE(fs::exists(probe));  // the thread waits for the destroy
    }  // the host unloads the plugin: on_destroy_executor sets the thread off and joins it
    std::ifstream in(probe);
    std::string answer;
    std::getline(in, answer);
    CHECK(answer == "TASK_ENDED");
  }
}

namespace {

// The calls the scripted fixture traced for one task (its input's "trace:PATH"), one a line.
std::vector<std::string> traced(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> calls;
  for (std::string line; std::getline(in, line);) calls.push_back(line);
  return calls;
}

std::string joined(const std::vector<std::string>& calls) {
  std::string out;
  for (const std::string& call : calls) out += (out.empty() ? "" : ", ") + call;
  return out;
}

// The calls the plugin sees for a task whose start it refuses, and for a task a reload --migrate moves
// to the next version, with the scripted plugin run `isolation`.
std::pair<std::string, std::string> calls_seen(plugin::Isolation isolation) {
  TempDir dir;
  const fs::path plugins = dir.path() / "plugins";
  fs::create_directories(plugins);
  install_plugin_file(fixture("scripted-v1.so"), plugins, "scripted.so");
  IsolatedHost f(plugins, isolate({{"scripted.so", isolation}}));
  REQUIRE(f.host->initial_scan().errors.empty());

  const fs::path refused = dir.path() / "refused.trace";
  REQUIRE(f.router().assign(assignment("refused", "test.hold", "\"reject-start trace:" + refused.string() + "\"")).accepted());
  const auto c = f.outbox.wait_completion("refused");
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(eventually([&] { return traced(refused).size() >= 2; }));

  const fs::path moved = dir.path() / "moved.trace";
  REQUIRE(f.router().assign(assignment("moved", "test.hold", "\"trace:" + moved.string() + "\"")).accepted());
  REQUIRE(f.outbox.wait_state("moved", v1::RUNNING));
  install_plugin_file(fixture("scripted-v2.so"), plugins, "scripted.so");
  REQUIRE(f.host->reload(true).errors.empty());
  CHECK(f.outbox.wait_message("moved", "resumed:detached:attempt=2"));
  CHECK(eventually([&] { return traced(moved).size() >= 6; }));
  return {joined(traced(refused)), joined(traced(moved))};
}

}  // namespace

TEST_CASE("an isolated plugin sees the calls an in-process one sees: release after a refused start and after a detach") {
  // QA: isolated, on_release never came after an on_start that failed, nor after the on_detach of a reload
  // --migrate, so what a plugin frees there leaked in its process.
  const auto in_process = calls_seen(plugin::Isolation::in_process);
  CHECK(in_process.first == "start, release");
  CHECK(in_process.second == "start, can_reattach, detach, release, can_reattach, start(reattach)");
  const auto isolated = calls_seen(plugin::Isolation::process);
  CHECK(isolated.first == in_process.first);
  CHECK(isolated.second == in_process.second);
}

TEST_CASE("a bad plugin file is refused with the same words isolated as in-process") {
  for (const std::string name : {"loader-broken-no-entry", "loader-broken-small-struct", "loader-broken-missing-cancel",
                                 "loader-broken-half-reattach", "loader-broken-factory-error",
                                 "loader-broken-factory-null", "loader-broken-manifest-mismatch",
                                 "loader-broken-kind-count"}) {
    CAPTURE(name);
    TempDir dir;
    install_plugin_file(fixture(name + ".so"), dir.path(), "p.so");
    IsolatedHost in_process(dir.path(), isolate({}));
    IsolatedHost isolated(dir.path(), isolate({}, plugin::Isolation::process));
    REQUIRE(in_process.host->initial_scan().errors.size() == 1);
    REQUIRE(isolated.host->initial_scan().errors.size() == 1);
    CHECK(isolated.host->initial_scan().errors.front() == in_process.host->initial_scan().errors.front());
  }
}

TEST_CASE("a plugin built against ABI 1.0 loads isolated as it does in-process") {
  TempDir dir;
  install_plugin_file(fixture("abi-v1-0.so"), dir.path(), "old.so");
  IsolatedHost f(dir.path(), isolate({}, plugin::Isolation::process));
  CHECK(f.host->initial_scan().errors.empty());
  CHECK(f.host->initial_scan().errors == IsolatedHost(dir.path(), isolate({})).host->initial_scan().errors);
}

TEST_CASE("a plugin that crashes while loading fails its file, naming it and the signal; the rest loads") {
  TempDir dir;
  install_plugin_file(fixture("loader-broken-factory-abort.so"), dir.path(), "crashy.so");
  install_plugin_file(fixture("hold.so"), dir.path(), "hold.so");
  IsolatedHost f(dir.path(), isolate({}, plugin::Isolation::process));
  const auto& errors = f.host->initial_scan().errors;
  REQUIRE(errors.size() == 1);
  CHECK_MESSAGE(errors.front().find("crashy.so") != std::string::npos, errors.front());
  CHECK_MESSAGE(errors.front().find("killed by signal 6") != std::string::npos, errors.front());
  CHECK_MESSAGE(errors.front().find("before it finished loading") != std::string::npos, errors.front());
  REQUIRE(f.router().assign(assignment("h", "hold.forever")).accepted());
  REQUIRE(f.outbox.wait_state("h", v1::RUNNING));
  f.router().cancel(cancel_request("h"));
  CHECK(f.outbox.wait_completion("h"));
}

TEST_CASE("a missing plugin process program is a load error naming the file and the program") {
  TempDir dir;
  install_plugin_file(fixture("hold.so"), dir.path(), "hold.so");
  plugin::IsolationPolicy policy = isolate({}, plugin::Isolation::process);
  policy.process.program = dir.path() / "no-such-program";
  IsolatedHost f(dir.path(), policy);
  const auto& errors = f.host->initial_scan().errors;
  REQUIRE(errors.size() == 1);
  CHECK_MESSAGE(errors.front().find("hold.so") != std::string::npos, errors.front());
  CHECK_MESSAGE(errors.front().find("no-such-program") != std::string::npos, errors.front());
}
