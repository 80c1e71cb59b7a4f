// Tasks end to end through the real binary: submit (and --wait with its exit codes), status, send
// (steering and input answers), cancel, watch — with --json output parsed — plus an unknown kind and an
// unknown task id, each of which must be a clear one-line error.
#include "cli_harness.hpp"
#include "host_metrics.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <thread>

using namespace taskhost::clitest;
namespace json = boost::json;

namespace {

struct Fixture {
  TempDir dir;
  fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so"), built_plugin("cpp-interactive.so")});
  Host host{plugins, dir.path() / "state"};
};

bool has_state(const json::object& s, const char* state) { return str(s, "state") == state; }

// A process's peak resident set (VmHWM), in kB; 0 if unreadable.
long peak_rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

// Every --json watch line as an object.
std::vector<json::object> watch_items(const Result& r) {
  std::vector<json::object> out;
  for (const auto& l : lines(r.out)) out.push_back(parse_json(l).as_object());
  return out;
}

}  // namespace

TEST_CASE_FIXTURE(Fixture, "submit --wait prints the result and exits by how the task ended") {
  Result r = host.cli({"submit", "hello.greet", "--input", R"({"name":"Ada"})", "--wait"});
  INFO(r);
  CHECK(r.code == 0);
  CHECK(r.out == "Hello, Ada!\n");

  r = host.cli({"submit", "hello.greet", "--input", R"({"name":"Grace"})", "--wait", "--json", "--id", "g1"});
  INFO(r);
  REQUIRE(r.code == 0);
  const auto c = parse_json(r.out).as_object();
  CHECK(str(c, "task_id") == "g1");
  CHECK(str(c, "state") == "SUCCEEDED");
  CHECK(str(c, "output") == "Hello, Grace!");
  CHECK(str(c, "kind") == "hello.greet");

  // Input from a file.
  const fs::path in = dir.path() / "in.json";
  std::ofstream(in) << R"({"name":"File"})";
  r = host.cli({"submit", "hello.greet", "--input", "@" + in.string(), "--wait"});
  CHECK(r.out == "Hello, File!\n");

  // A failing task: exit 3, the error on stdout.
  r = host.cli({"submit", "hello.greet", "--input", "{}", "--wait"});
  INFO(r);
  CHECK(r.code == 3);
  CHECK(r.out.find("failed: INVALID_INPUT") != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "submit prints the id; status shows one task or all of them") {
  CHECK(host.cli({"status", "--json"}).out == "{\"tasks\":[]}\n");  // an empty list, not "{}"
  const std::string id = submit(host, {"hello.greet", "--input", R"({"name":"Lin"})"});
  CHECK_FALSE(id.empty());
  const auto s = wait_for_status(host, id, [](const json::object& o) { return has_state(o, "SUCCEEDED"); });
  CHECK(str(s, "kind") == "hello.greet");
  CHECK(str(obj(s, "completion"), "output") == "Hello, Lin!");

  // Plain output of submit is the bare id.
  const Result plain = host.cli({"submit", "hello.greet", "--input", R"({"name":"X"})", "--id", "plain-1"});
  CHECK(plain.out == "plain-1\n");
  // The same id again is accepted as a duplicate (idempotent), not a second task.
  const Result again = host.cli({"submit", "hello.greet", "--input", R"({"name":"Y"})", "--id", "plain-1"});
  CHECK(again.code == 0);
  CHECK(again.out == "plain-1\n");

  const Result list = host.cli({"status", "--json"});
  REQUIRE(list.code == 0);
  int seen = 0, plain_seen = 0;
  const json::value listed = parse_json(list.out);
  for (const auto& t : listed.as_object().at("tasks").as_array()) {
    if (str(t.as_object(), "task_id") == id) ++seen;
    if (str(t.as_object(), "task_id") == "plain-1") ++plain_seen;
  }
  CHECK(seen == 1);
  CHECK(plain_seen == 1);
  const Result table = host.cli({"status"});
  CHECK(table.out.find("TASK") == 0);
  CHECK(table.out.find(id) != std::string::npos);
  const Result one = host.cli({"status", id});
  CHECK(one.out.find("state:") != std::string::npos);
  CHECK(one.out.find("succeeded") != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "an unknown kind is refused with COMPONENT_NOT_FOUND in one line, and recorded failed") {
  const Result r = host.cli({"submit", "no.such.kind", "--id", "nk1", "--wait"});
  INFO(r);
  CHECK(r.code == 1);
  REQUIRE(lines(r.err).size() == 1);
  CHECK(r.err.find("no plugin serves kind 'no.such.kind'") != std::string::npos);
  CHECK(r.err.find("[COMPONENT_NOT_FOUND]") != std::string::npos);
  const auto s = wait_for_status(host, "nk1", [](const json::object& o) { return has_state(o, "FAILED"); });
  CHECK(str(obj(obj(s, "completion"), "error"), "code") == "COMPONENT_NOT_FOUND");
}

TEST_CASE_FIXTURE(Fixture, "an id the host cannot take is a usage error (exit 2) naming the rule, and nothing is sent") {
  for (const std::string& id : {std::string("has space"), std::string("a/b"), std::string(257, 'x')}) {
    const Result r = host.cli({"submit", "hello.greet", "--id", id});
    INFO(r);
    CHECK(r.code == 2);
    CHECK(r.err.find("--id ") != std::string::npos);
  }
  // Beyond ASCII (QA): bytes that are not UTF-8 (the id was silently cut to "badid"), and characters
  // that make an id look like another: a right-to-left override, a C1 control.
  const std::vector<std::pair<std::string, std::string>> unicode = {
      {"bad\xff" "id", "is not UTF-8"},
      {"rtl\xe2\x80\xae" "exe.txt", "text direction"},
      {"c1\xc2\x85x", "control"}};
  for (const auto& [id, rule] : unicode) {
    const Result r = host.cli({"submit", "hello.greet", "--id", id});
    INFO(r);
    CHECK(r.code == 2);
    CHECK(r.err.find(rule) != std::string::npos);
  }
  CHECK(host.cli({"submit", "hello.greet", "--id", "caf\xc3\xa9-\xe4\xb8\xad", "--input", R"({"name":"u"})"}).code == 0);
  // Nothing refused reached the host: the task list holds the one good id.
  const Result all = host.cli({"status", "--json"});
  REQUIRE(all.code == 0);
  const auto listed = parse_json(all.out).as_object();
  REQUIRE(listed.contains("tasks"));
  CHECK(listed.at("tasks").as_array().size() == 1);
}

TEST_CASE_FIXTURE(Fixture, "an unknown task id is one line naming it, for every command") {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"status", "ghost"}, {"send", "ghost", "hi"}, {"cancel", "ghost"}, {"watch", "ghost"}}) {
    const Result r = host.cli(args);
    INFO(args[0] << ": " << r);
    CHECK(r.code == 1);
    CHECK(lines(r.err).size() == 1);
    CHECK(r.err.find("unknown task 'ghost'") != std::string::npos);
  }
  const Result j = host.cli({"send", "ghost", "hi", "--json"});
  CHECK(str(parse_json(j.out).as_object(), "outcome") == "UNKNOWN_TASK");
}

TEST_CASE_FIXTURE(Fixture, "a task that asks for input waits for the answer given with send --reply-to") {
  const std::string id = submit(host, {"interactive.count", "--input", R"({"steps":3,"delay_ms":20,"ask":true})"});
  const auto waiting = wait_for_status(host, id, [](const json::object& o) { return has_state(o, "WAITING_INPUT"); });
  REQUIRE(has_state(waiting, "WAITING_INPUT"));
  CHECK(str(waiting, "pending_request_id") == "confirm");
  CHECK(str(waiting, "pending_prompt").find("Continue?") != std::string::npos);

  const Result sent = host.cli({"send", id, "yes", "--reply-to", "confirm", "--json"});
  INFO(sent);
  REQUIRE(sent.code == 0);
  CHECK(str(parse_json(sent.out).as_object(), "outcome") == "ACCEPTED");

  // watch ID replays what happened and ends with the completion.
  const Result w = host.cli({"watch", id, "--json", "--timeout", "20"});
  INFO(w);
  REQUIRE(w.code == 0);
  const auto items = watch_items(w);
  REQUIRE_FALSE(items.empty());
  bool asked = false, resumed = false;
  for (const auto& it : items) {
    const auto& e = obj(it, "event");
    if (str(obj(e, "input_request"), "request_id") == "confirm") asked = true;
    if (asked && str(obj(e, "state"), "state") == "RUNNING") resumed = true;
  }
  CHECK(asked);
  CHECK(resumed);
  const auto& done = obj(items.back(), "completion");
  CHECK(str(done, "state") == "SUCCEEDED");
  CHECK(str(parse_json(str(done, "output")).as_object(), "answer") == "yes");
}

TEST_CASE_FIXTURE(Fixture, "steering text reaches a running task and its reply shows in watch") {
  // 20 s: still running however long the CLI runs below take; canceled once its reply was seen.
  const std::string id = submit(host, {"interactive.count", "--input", R"({"steps":400,"delay_ms":50})"});
  wait_for_status(host, id, [](const json::object& o) { return has_state(o, "RUNNING"); });
  const Result sent = host.cli({"send", id, "hello there", "--data", R"({"k":1})"});
  INFO(sent);
  REQUIRE(sent.code == 0);
  CHECK(sent.out.find("delivered") == 0);
  // The watch replays what the task emitted so far, then follows it live for up to 2 s.
  bool echoed = false;
  for (int i = 0; i < 10 && !echoed; ++i) {
    const Result w = host.cli({"watch", id, "--json", "--timeout", "2"});
    for (const auto& it : watch_items(w)) {
      if (str(obj(obj(it, "event"), "message"), "text") == "echo: hello there") echoed = true;
    }
  }
  CHECK(echoed);
  CHECK(host.cli({"cancel", id}).code == 0);
}

TEST_CASE_FIXTURE(Fixture, "plugin text with CR/LF or ESC shows escaped in watch and status, never raw") {
  const std::string id = submit(host, {"interactive.count", "--input", R"({"steps":400,"delay_ms":50})"});
  wait_for_status(host, id, [](const json::object& o) { return has_state(o, "RUNNING"); });
  // The task echoes steering text back as its own message: plugin text, as a third party's would be.
  REQUIRE(host.cli({"send", id, "one\r\n12:00:00.000  forged \x1b[31mred"}).code == 0);
  std::string shown;
  for (int i = 0; i < 10 && shown.find("echo: one") == std::string::npos; ++i) {
    shown = host.cli({"watch", id, "--timeout", "2"}).out;
  }
  INFO(shown);
  CHECK(shown.find("message: echo: one\\r\\n12:00:00.000  forged \\x1b[31mred") != std::string::npos);
  CHECK(shown.find('\x1b') == std::string::npos);
  CHECK(shown.find('\r') == std::string::npos);
  REQUIRE(host.cli({"cancel", id}).code == 0);
  // A plugin's output with them, in the one-line rows of `status`.
  const Result greeted = host.cli({"submit", "hello.greet", "--id", "ctl", "--wait", "--input",
                                   R"({"name":"a\r\nb\u001b[2Jc"})"});
  REQUIRE(greeted.code == 0);
  const Result status = host.cli({"status", "ctl"});
  INFO(status);
  CHECK(status.out.find("Hello, a\\r\\nb\\x1b[2Jc!") != std::string::npos);
  CHECK(status.out.find('\x1b') == std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "cancel ends a running task canceled; then sends and cancels say it ended") {
  const std::string id = submit(host, {"interactive.count", "--input", R"({"steps":200,"delay_ms":50})"});
  wait_for_status(host, id, [](const json::object& o) { return has_state(o, "RUNNING"); });
  const Result c = host.cli({"cancel", id, "--reason", "test", "--json"});
  INFO(c);
  REQUIRE(c.code == 0);
  CHECK(str(parse_json(c.out).as_object(), "outcome") == "ACCEPTED");
  const auto s = wait_for_status(host, id, [](const json::object& o) { return has_state(o, "CANCELED"); });
  CHECK(has_state(s, "CANCELED"));

  const Result late = host.cli({"send", id, "too late"});
  INFO(late);
  CHECK(late.code == 1);
  CHECK(lines(late.err).size() == 1);
  CHECK(late.err.find("already ended") != std::string::npos);
  CHECK(late.err.find("TASK_ENDED") != std::string::npos);
  CHECK(host.cli({"cancel", id}).code == 1);
}

TEST_CASE_FIXTURE(Fixture, "submit --wait exits 4 when the task is canceled meanwhile") {
  Background waiter({"submit", "interactive.count", "--input", R"({"steps":200,"delay_ms":50})", "--id", "cw1",
                     "--wait", "--api", host.api()});
  wait_for_status(host, "cw1", [](const json::object& o) { return has_state(o, "RUNNING"); });
  REQUIRE(host.cli({"cancel", "cw1"}).code == 0);
  const Result r = waiter.finish(20s);
  INFO(r);
  CHECK(r.code == 4);
  CHECK(r.out.find("canceled") == 0);
}

TEST_CASE_FIXTURE(Fixture, "watch without an id streams every task live until its timeout") {
  Background watcher({"watch", "--json", "--timeout", "10", "--api", host.api()});
  REQUIRE(wait_for_watchers(host, 1));  // subscribed: every task from here on is in its stream
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    const Result done = host.cli({"submit", "hello.greet", "--input", R"({"name":"W"})", "--wait", "--json"});
    REQUIRE(done.code == 0);
    ids.push_back(str(parse_json(done.out).as_object(), "task_id"));
  }
  const Result r = watcher.finish(20s);
  INFO(r);
  REQUIRE(r.code == 0);
  size_t completed = 0;
  for (const auto& it : watch_items(r)) {
    const auto task = str(obj(it, "completion"), "task_id");
    if (std::find(ids.begin(), ids.end(), task) != ids.end()) ++completed;
  }
  CHECK(completed == 5);
  // Piped (not a terminal): plain lines, no progress-bar control characters.
  const std::string pid = submit(host, {"interactive.count", "--input", R"({"steps":3,"delay_ms":10})"});
  const Result plain = host.cli({"watch", pid, "--timeout", "20"});
  CHECK(plain.out.find("progress 3/3 steps") != std::string::npos);
  CHECK(plain.out.find('\r') == std::string::npos);
  CHECK(plain.out.find("succeeded") != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "in a terminal, watch draws progress as a bar that redraws in place") {
  const std::string id = submit(host, {"interactive.count", "--input", R"({"steps":4,"delay_ms":20})"});
  const Result r = run_in_terminal({"watch", id, "--timeout", "20", "--api", host.api()});
  INFO(r);
  CHECK(r.code == 0);
  CHECK(r.out.find("\r\x1b[2K") != std::string::npos);                // redraw in place
  CHECK(r.out.find("[########################] 4/4 steps") != std::string::npos);  // a full bar
  CHECK(r.out.find("progress 4/4") == std::string::npos);             // not the piped form
  CHECK(r.out.find("succeeded") != std::string::npos);
}

TEST_CASE("steering sent while a task waits for a slot survives a crash; an answer never asked for shows in its events") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("cpp-interactive.so")});
  const fs::path cfg = dir.path() / "taskhost.toml";
  std::ofstream(cfg) << "[limits.kinds]\n\"interactive.count\" = 1\n";
  const fs::path state = dir.path() / "state";
  {
    Host host(plugins, state, {"--config", cfg.string()});
    // 100 s: holds the only slot through the CLI runs below, however slow; canceled in the next run.
    submit(host, {"interactive.count", "--id", "blocker", "--input", R"({"steps":2000,"delay_ms":50})"});
    submit(host, {"interactive.count", "--id", "later", "--input", R"({"steps":20,"delay_ms":50})"});
    wait_for_status(host, "blocker", [](const json::object& o) { return has_state(o, "RUNNING"); });
    for (const std::vector<std::string>& args : {std::vector<std::string>{"send", "later", "hello there", "--json"},
                                                 std::vector<std::string>{"send", "later", "yes", "--reply-to", "bogus", "--json"}}) {
      const Result sent = host.cli(args);
      INFO(sent);
      REQUIRE(sent.code == 0);
      const auto receipt = parse_json(sent.out).as_object();
      CHECK(str(receipt, "outcome") == "ACCEPTED");
      CHECK(receipt.at("queued").as_bool());  // provisional: decided at the start
    }
    // Without --json: accepted, and not called "delivered" while it waits.
    const Result plain = host.cli({"send", "later", "plain words"});
    INFO(plain);
    CHECK(plain.out.starts_with("accepted (queued"));
    host.signal(SIGKILL);
    REQUIRE(host.wait_exit(10s).has_value());
  }
  Host again(plugins, state, {"--config", cfg.string()});
  REQUIRE(again.cli({"cancel", "blocker"}).code == 0);  // re-attached: it gives `later` the slot
  const auto done = wait_for_status(again, "later", [](const json::object& o) { return has_state(o, "SUCCEEDED"); }, 30s);
  REQUIRE(has_state(done, "SUCCEEDED"));
  const Result w = again.cli({"watch", "later", "--json", "--timeout", "20"});
  INFO(w);
  bool echoed = false, refusal = false;
  for (const auto& it : watch_items(w)) {
    const auto& e = obj(it, "event");
    if (str(obj(e, "message"), "text") == "echo: hello there") echoed = true;
    const std::string detail = str(obj(e, "state"), "detail");
    // Held for a question the task never asked, and said so when it ended.
    if (detail.find("answers input 'bogus', which the task did not ask for: not delivered") != std::string::npos) {
      refusal = true;
    }
  }
  CHECK(echoed);   // delivered once the task started in the next run
  CHECK(refusal);  // the task never asked for 'bogus': said in its own events, not silently dropped
}

TEST_CASE_FIXTURE(Fixture, "an id submitted again is the same task, unless it names another kind; --json escapes ids") {
  const Result first = host.cli({"submit", "hello.greet", "--id", "X", "--input", R"({"name":"a"})"});
  REQUIRE(first.code == 0);
  CHECK(first.err.empty());
  const Result same = host.cli({"submit", "hello.greet", "--id", "X", "--input", R"({"name":"b"})", "--wait"});
  INFO(same);
  CHECK(same.code == 0);  // idempotent: the one task's result...
  CHECK(same.out == "Hello, a!\n");
  // ... said, not silent: the input given this time was not used.
  CHECK(same.err.find("task 'X' was submitted before; this is that task (nothing new was submitted)") !=
        std::string::npos);
  const Result same_json = host.cli({"submit", "hello.greet", "--id", "X", "--json"});
  REQUIRE(same_json.code == 0);
  CHECK(parse_json(same_json.out).as_object().at("duplicate").as_bool());
  // With --wait too: the earlier task's completion, marked as such.
  const Result waited_json = host.cli({"submit", "hello.greet", "--id", "X", "--json", "--wait"});
  REQUIRE(waited_json.code == 0);
  const auto waited = parse_json(waited_json.out).as_object();
  CHECK(waited.at("duplicate").as_bool());
  CHECK(str(waited, "state") == "SUCCEEDED");
  const Result other = host.cli({"submit", "interactive.count", "--id", "X", "--wait"});
  INFO(other);
  CHECK(other.code == 1);
  CHECK(other.err.find("task 'X' already exists as kind 'hello.greet'; not submitted as 'interactive.count'") !=
        std::string::npos);

  const Result quoted = host.cli({"submit", "hello.greet", "--id", R"(a"b\c)", "--json"});
  INFO(quoted);
  REQUIRE(quoted.code == 0);
  CHECK(str(parse_json(quoted.out).as_object(), "task_id") == R"(a"b\c)");
}

TEST_CASE_FIXTURE(Fixture, "watch of an ended task shows its completion stamped when it ended, not when watched") {
  REQUIRE(host.cli({"submit", "hello.greet", "--id", "stamped", "--input", R"({"name":"Ada"})", "--wait"}).code == 0);
  std::this_thread::sleep_for(1200ms);
  const auto watched_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  const Result w = host.cli({"watch", "stamped", "--json", "--timeout", "10"});
  INFO(w);
  REQUIRE(w.code == 0);
  const auto items = watch_items(w);
  REQUIRE_FALSE(items.empty());
  const auto& done = obj(items.back(), "completion");
  const int64_t ended = std::stoll(str(done, "unix_ms"));  // int64 is a string in protobuf's JSON
  CHECK(ended > 0);
  CHECK(watched_at - ended >= 1000);
}

TEST_CASE("watch behind a reader too slow for the task's output is ended by the host, saying so: exit 1, memory bounded") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("exec.so")});
  Host host(plugins, dir.path() / "state");
  // About 64 MB of output, in deltas; the host holds at most 16 MiB of items for one watcher.
  const std::string id = submit(host, {"exec.run", "--id", "loud", "--input",
                                       R"({"argv":["sh","-c","sleep 1; head -c 64000000 /dev/zero | tr '\\0' a"]})"});
  // The watcher's stdout is a pipe nobody reads for a while: it stops reading its stream, as a slow
  // terminal or a stalled script would.
  const Result r = run_program(
      {"/bin/bash", "-c",
       "set -o pipefail; '" + taskhost_bin().string() + "' watch " + id + " --api " + host.api() +
           " | (sleep 8; cat > /dev/null)"},
      90s);
  INFO(r);
  CHECK(r.code == 1);  // not 0: the stream did not show the task to its end
  CHECK(r.err.find("watch stream ended by the host: the reader fell") != std::string::npos);
  CHECK(r.err.find("bytes) behind") != std::string::npos);
  // What the host held for the stalled watcher stayed bounded: items are counted in bytes too (by the
  // item bound alone, 10,000 output deltas of this task are ~450 MB).
  const long peak_kb = peak_rss_kb(host.pid());
  INFO("host peak RSS " << peak_kb << " kB");
  CHECK(peak_kb > 0);
  CHECK(peak_kb < 200 * 1024);
  // The task itself is not affected.
  const auto done = wait_for_status(host, id, [](const json::object& o) { return has_state(o, "SUCCEEDED"); }, 60s);
  CHECK(has_state(done, "SUCCEEDED"));
}

namespace {
// Processes whose command line is exactly `argv` (their /proc/PID/cmdline), this machine-wide.
std::vector<pid_t> processes_running(const std::vector<std::string>& argv) {
  std::string want;
  for (const auto& a : argv) want += a + '\0';
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    // A process may exit between the listing and this read (ESRCH, which the stream reports by throwing):
    // it is not running, so it is skipped.
    std::string cmdline;
    try {
      std::ifstream in(entry.path() / "cmdline", std::ios::binary);
      cmdline.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    } catch (const std::exception&) {
      continue;
    }
    if (cmdline == want) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}
}  // namespace

TEST_CASE("a host killed with SIGKILL leaves no exec.run program running") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("exec.so")});
  Host host(plugins, dir.path() / "state");
  // A duration no other process on the machine is likely to sleep for.
  const std::vector<std::string> argv = {"sleep", std::to_string(600 + ::getpid() % 997) + ".5"};
  const std::string id = submit(host, {"exec.run", "--id", "long", "--input",
                                       R"({"argv":[")" + argv[0] + R"(",")" + argv[1] + R"("]})"});
  wait_for_status(host, id, [](const json::object& o) { return has_state(o, "RUNNING"); });
  REQUIRE(processes_running(argv).size() == 1);
  host.signal(SIGKILL);
  REQUIRE(host.wait_exit(10s).has_value());
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!processes_running(argv).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  const auto left = processes_running(argv);
  for (pid_t pid : left) ::kill(pid, SIGKILL);  // not left behind by the test either
  CHECK_MESSAGE(left.empty(), "the program outlived its host");
}

TEST_CASE("a submit refused because no plugin served its kind leaves its id free: the same id runs once one does") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("cpp-interactive.so")});
  Host host(plugins, dir.path() / "state", {"--no-watch"});
  Result r = host.cli({"submit", "hello.greet", "--id", "retry1", "--input", R"({"name":"x"})"});
  INFO(r);
  REQUIRE(r.code == 1);
  CHECK(r.err.find("COMPONENT_NOT_FOUND") != std::string::npos);
  fs::copy_file(built_plugin("hello-c.so"), plugins / "hello-c.so");
  REQUIRE(host.cli({"reload"}).code == 0);
  r = host.cli({"submit", "hello.greet", "--id", "retry1", "--input", R"({"name":"x"})", "--wait"});
  INFO(r);
  CHECK(r.code == 0);
  CHECK(r.out == "Hello, x!\n");  // run, not answered with the refusal
  // Once it ran, the id is that task again: idempotent, as for any other.
  r = host.cli({"submit", "hello.greet", "--id", "retry1", "--input", R"({"name":"y"})", "--wait"});
  CHECK(r.out == "Hello, x!\n");
}

TEST_CASE("[tasks] keep_ended_secs: an ended task is deleted after it, and its id runs again as a new task") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  const fs::path config = dir.path() / "taskhost.toml";
  std::ofstream(config) << "[tasks]\nkeep_ended_secs = 1\n";
  Host host(plugins, dir.path() / "state", {"--config", config.string(), "--no-watch"});
  Result r = host.cli({"submit", "hello.greet", "--id", "short-lived", "--input", R"({"name":"x"})", "--wait"});
  REQUIRE(r.code == 0);
  CHECK(r.out == "Hello, x!\n");
  // Known until the pruner's next pass after a second; then gone: status names the id as unknown.
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while ((r = host.cli({"status", "short-lived"})).code == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  INFO(r);
  CHECK(r.code == 1);
  CHECK(r.err.find("short-lived") != std::string::npos);
  CHECK(host.log().find("deleted 1 task(s) that ended over 1 s ago") != std::string::npos);
  r = host.cli({"submit", "hello.greet", "--id", "short-lived", "--input", R"({"name":"y"})", "--wait"});
  CHECK(r.code == 0);
  CHECK(r.out == "Hello, y!\n");  // run anew, not answered with the first task's result
}

TEST_CASE_FIXTURE(Fixture, "the status table lines columns up by display width: wide and accented ids too") {
  // Four columns each: two wide characters, four ASCII letters, an accented letter and three more.
  const std::vector<std::string> ids = {"中中", "abcd", "\xc3\xa9" "abc"};
  for (const auto& id : ids) submit(host, {"hello.greet", "--id", id, "--input", R"({"name":"w"})"});
  const Result r = host.cli({"status"});
  INFO(r);
  REQUIRE(r.code == 0);
  std::vector<std::string> gaps;  // what stands between each id and its kind
  for (const auto& line : lines(r.out)) {
    for (const auto& id : ids) {
      if (line.rfind(id, 0) == 0) gaps.push_back(line.substr(id.size(), line.find("hello.greet") - id.size()));
    }
  }
  REQUIRE(gaps.size() == ids.size());
  CHECK(gaps[0] == gaps[1]);
  CHECK(gaps[1] == gaps[2]);
}

TEST_CASE_FIXTURE(Fixture, "a task's long text does not widen every row of the status table: cells are clipped") {
  // QA: one task's 64 KiB detail padded every row of the list to its width (1.5 MB for 40 tasks).
  const std::string name(200, 'n');  // hello-c answers "Hello, NAME!": 208 bytes
  REQUIRE(host.cli({"submit", "hello.greet", "--id", "wordy", "--input", R"({"name":")" + name + R"("})", "--wait"}).code == 0);
  REQUIRE(host.cli({"submit", "hello.greet", "--id", "terse", "--input", R"({"name":"x"})", "--wait"}).code == 0);
  const Result table = host.cli({"status"});
  INFO(table);
  REQUIRE(table.code == 0);
  for (const auto& line : lines(table.out)) CHECK(line.size() < 180);  // the detail column at most 100
  CHECK(table.out.find("…") != std::string::npos);
  // The whole text is one command away.
  const Result one = host.cli({"status", "wordy", "--json"});
  CHECK(one.out.find(name) != std::string::npos);
}

TEST_CASE_FIXTURE(Fixture, "a listing leaves a large output out and says how to get it; the task's own status has it") {
  const std::string name(20'000, 'n');  // interactive.echo succeeds with its input: over the listing's 16 KiB
  REQUIRE(host.cli({"submit", "interactive.echo", "--id", "large", "--input", R"({"name":")" + name + R"("})", "--wait"}).code == 0);
  REQUIRE(host.cli({"submit", "hello.greet", "--id", "small", "--input", R"({"name":"x"})", "--wait"}).code == 0);
  const Result table = host.cli({"status"});
  INFO(table);
  REQUIRE(table.code == 0);
  CHECK(table.out.find("left out of listings (taskhost status large)") != std::string::npos);
  CHECK(table.out.find("Hello, x!") != std::string::npos);
  const Result listed = host.cli({"status", "--json"});
  REQUIRE(listed.code == 0);
  CHECK(listed.out.find(name) == std::string::npos);
  CHECK(listed.out.find("\"output_omitted_bytes\"") != std::string::npos);
  const Result one = host.cli({"status", "large", "--json"});
  CHECK(one.out.find(name) != std::string::npos);
  CHECK(one.out.find("output_omitted_bytes") == std::string::npos);
}
