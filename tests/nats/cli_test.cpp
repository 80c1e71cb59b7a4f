// The CLI against a NATS deployment, as issue #6 promises it: a real `taskhost serve --transport nats`
// process on a real nats-server, and the real `taskhost` binary with --nats URL (no host API at all) for
// plugins (discovery), submit --wait, status, send (steering and input answers), cancel and watch.
// --nats-prefix picks a non-default deployment, so the flag is proven too.
#include "cli_harness.hpp"
#include "eventually.hpp"
#include "nats_server.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <thread>

namespace json = boost::json;
namespace cli = taskhost::clitest;
using taskhost::testing::NatsServer;
using taskhost::testing::Subprocess;
using namespace std::chrono_literals;

namespace {

constexpr const char* kPrefix = "CLIDEP";

NatsServer::Options server_options(const std::filesystem::path& work_dir) {
  NatsServer::Options o;
  o.work_dir = work_dir;
  return o;
}

// One nats-server and one host serving the sample plugins on it, under the stream prefix kPrefix.
struct Deployment {
  taskhost::testing::TempDir dir{"taskhost-cli-nats"};
  NatsServer server{server_options(dir.path() / "nats")};
  std::filesystem::path plugins = cli::make_plugins_dir(
      dir.path(), {cli::built_plugin("hello-c.so"), cli::built_plugin("cpp-interactive.so")});
  std::filesystem::path host_log = dir.path() / "host.log";
  Subprocess host{{cli::taskhost_bin().string(), "serve", "--transport", "nats", "--nats", server.url(),
                   "--nats-prefix", kPrefix, "--plugins", plugins.string(), "--worker-id", "cli-h1"},
                  host_log};

  // `taskhost ARGS... --nats URL --nats-prefix kPrefix`.
  cli::Result cli(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) const {
    args.insert(args.end(), {"--nats", server.url(), "--nats-prefix", kPrefix});
    return cli::run(args, {}, timeout);
  }
  std::string log() const {
    std::ifstream in(host_log);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string submit(const std::vector<std::string>& args) const {
    std::vector<std::string> a = {"submit"};
    a.insert(a.end(), args.begin(), args.end());
    a.push_back("--json");
    const cli::Result r = cli(a);
    INFO(r);
    REQUIRE(r.code == 0);
    return cli::str(cli::parse_json(r.out).as_object(), "task_id");
  }
  // `status ID --json` until its state is `state` (15 s); returns the last status seen.
  json::object wait_state(const std::string& id, const char* state) const {
    json::object last;
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      const cli::Result r = cli({"status", id, "--json"});
      if (r.code == 0) {
        last = cli::parse_json(r.out).as_object();
        if (cli::str(last, "state") == state) return last;
      }
      std::this_thread::sleep_for(50ms);
    }
    FAIL("task " << id << " never reached " << state << "; last status " << json::serialize(last)
                 << "\nhost log:\n" << log());
    return last;
  }
};

// The host answers discovery once it serves; that is the readiness signal a NATS operator has too.
void wait_discovered(const Deployment& d) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  cli::Result r;
  while (std::chrono::steady_clock::now() < deadline) {
    r = d.cli({"plugins", "--json"}, 10s);
    if (r.code == 0 && r.out.find("cli-h1") != std::string::npos) return;
    std::this_thread::sleep_for(100ms);
  }
  FAIL("the host never answered discovery: " << r << "\nhost log:\n" << d.log());
}

}  // namespace

TEST_CASE("taskhost CLI with --nats: discovery, submit --wait, input answer, steering, cancel, watch, status") {
  // One deployment for every step below: each step uses its own tasks, and a server plus a host per step
  // would cost more than the steps themselves.
  Deployment d;
  wait_discovered(d);

  {  // plugins --nats lists every live host with its kinds
    // One discovery round waits 500 ms for answers: on a loaded machine a host can answer after it.
    cli::Result r = d.cli({"plugins"});
    for (int i = 0; i < 20 && (r.code != 0 || r.out.find("cli-h1") == std::string::npos); ++i) r = d.cli({"plugins"});
    INFO(r);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("cli-h1") != std::string::npos);
    CHECK(r.out.find("hello.greet") != std::string::npos);
    CHECK(r.out.find("interactive.count") != std::string::npos);
    // Without the prefix the client looks at another (empty) deployment: no host answers, one clear line.
    const cli::Result other = cli::run({"plugins", "--nats", d.server.url()}, {}, 30s);
    INFO(other);
    CHECK(other.code != 0);
    CHECK(cli::lines(other.err).size() == 1);
  }

  {  // submit --wait prints the result; a failing task exits 3
    cli::Result r = d.cli({"submit", "hello.greet", "--input", R"({"name":"Ada"})", "--wait"});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.out == "Hello, Ada!\n");
    r = d.cli({"submit", "hello.greet", "--input", "{}", "--wait"});
    INFO(r);
    CHECK(r.code == 3);
    CHECK(r.out.find("INVALID_INPUT") != std::string::npos);
  }

  {  // an id that ended is that task: submitted again it is not run again; a failed submit leaves nothing
    cli::Result r = d.cli({"submit", "hello.greet", "--id", "again-1", "--input", R"({"name":"Ada"})", "--wait"});
    INFO(r);
    REQUIRE(r.code == 0);
    r = d.cli({"submit", "hello.greet", "--id", "again-1", "--input", R"({"name":"Bob"})", "--wait"});
    INFO(r);
    CHECK(r.code == 0);
    CHECK(r.out == "Hello, Ada!\n");
    CHECK(r.err.find("task 'again-1' was submitted before; this is that task") != std::string::npos);
    const cli::Result s = d.cli({"status", "again-1", "--json"});
    INFO(s);
    CHECK(cli::str(cli::parse_json(s.out).as_object(), "state") == "SUCCEEDED");
    // Under another kind it is another task: refused, not answered with the first one's result.
    r = d.cli({"submit", "exec.run", "--id", "again-1", "--input", R"({"argv":["false"]})", "--wait"});
    INFO(r);
    CHECK(r.code == 1);
    CHECK(r.err.find("task 'again-1' already ran as kind 'hello.greet'; not submitted as 'exec.run'") != std::string::npos);

    const std::filesystem::path big = d.dir.path() / "big.json";
    std::ofstream(big) << R"({"name":")" << std::string(2 * 1024 * 1024, 'x') << R"("})";
    r = d.cli({"submit", "hello.greet", "--id", "too-big", "--input", "@" + big.string()});
    INFO(r);
    CHECK(r.code == 1);
    r = d.cli({"status", "too-big"});
    INFO(r);
    CHECK(r.code == 1);  // unknown: no queued record was left behind
    CHECK(r.err.find("unknown task") != std::string::npos);
  }

  {  // an input request is answered with send --reply-to, and watch ends with the completion
    const std::string id = d.submit({"interactive.count", "--input", R"({"steps":3,"delay_ms":20,"ask":true})"});
    const auto waiting = d.wait_state(id, "WAITING_INPUT");
    CHECK(cli::str(waiting, "pending_request_id") == "confirm");
    const cli::Result sent = d.cli({"send", id, "yes", "--reply-to", "confirm", "--json"});
    INFO(sent);
    REQUIRE(sent.code == 0);
    CHECK(cli::str(cli::parse_json(sent.out).as_object(), "outcome") == "ACCEPTED");

    // No --timeout: watch ID must end by itself with the completion (the harness kills it after 20 s).
    const cli::Result w = d.cli({"watch", id, "--json"}, 20s);
    INFO(w);
    REQUIRE(w.code == 0);
    const auto items = cli::lines(w.out);
    REQUIRE_FALSE(items.empty());
    const auto last = cli::parse_json(items.back()).as_object();
    const auto& done = cli::obj(last, "completion");
    CHECK(cli::str(done, "state") == "SUCCEEDED");
    CHECK(cli::str(cli::parse_json(cli::str(done, "output")).as_object(), "answer") == "yes");
  }

  {  // steering reaches the running task; cancel ends it; later sends are told it ended
    const std::string id = d.submit({"interactive.count", "--input", R"({"steps":400,"delay_ms":50})"});
    d.wait_state(id, "RUNNING");
    const cli::Result sent = d.cli({"send", id, "hello there"});
    INFO(sent);
    CHECK(sent.code == 0);

    const cli::Result c = d.cli({"cancel", id, "--json"});
    INFO(c);
    REQUIRE(c.code == 0);
    CHECK(cli::str(cli::parse_json(c.out).as_object(), "outcome") == "ACCEPTED");
    d.wait_state(id, "CANCELED");

    const cli::Result w = d.cli({"watch", id, "--json"}, 20s);
    INFO(w);
    CHECK(w.code == 0);
    bool echoed = false;
    for (const auto& l : cli::lines(w.out)) {
      const auto item = cli::parse_json(l).as_object();
      if (const auto* e = item.if_contains("event"); e && e->is_object()) {
        if (cli::str(cli::obj(e->as_object(), "message"), "text") == "echo: hello there") echoed = true;
      }
    }
    CHECK(echoed);

    const cli::Result late = d.cli({"send", id, "too late"});
    INFO(late);
    CHECK(late.code == 1);
    CHECK(cli::lines(late.err).size() == 1);
    CHECK(late.err.find("TASK_ENDED") != std::string::npos);
  }

  {  // an unknown task id is one line naming it, for every command
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"status", "ghost"}, {"cancel", "ghost"}, {"watch", "ghost"}}) {
      const cli::Result r = d.cli(args);
      INFO(args[0] << ": " << r);
      CHECK(r.code == 1);
      CHECK(cli::lines(r.err).size() == 1);
      CHECK(r.err.find("unknown task 'ghost'") != std::string::npos);
    }
  }

  {  // commands that need a host's local API say so
    const cli::Result r = d.cli({"reload"});
    INFO(r);
    CHECK(r.code != 0);
    CHECK(r.err.find("--nats") != std::string::npos);
  }
}

TEST_CASE("SIGTERM with the server gone: the host gives up on what it cannot store and exits, exit 0") {
  // What the host could not store is what a host that died would leave: its records make another host
  // take the task over. Waiting on a server that is gone only held the exit up (30 s for publishes, then
  // 5 s per lease write and subscription drain: close to a minute on top of the drain grace).
  taskhost::testing::TempDir dir{"taskhost-nats-gone"};
  NatsServer server{server_options(dir.path() / "nats")};
  const auto plugins = cli::make_plugins_dir(dir.path(), {cli::built_plugin("cpp-interactive.so")});
  const auto config = dir.path() / "taskhost.toml";
  // An [api] table, as in a config shared with embedded hosts: a NATS host has no API, and says so.
  std::ofstream(config) << "[tasks]\ndrain_grace_ms = 500\n[api]\naddress = \"127.0.0.1:0\"\n";
  const auto log_file = dir.path() / "host.log";
  Subprocess host{{cli::taskhost_bin().string(), "serve", "--config", config.string(), "--transport", "nats", "--nats",
                   server.url(), "--plugins", plugins.string(), "--worker-id", "gone-h1"},
                  log_file};
  auto log = [&] {
    std::ifstream in(log_file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const cli::Result submitted = cli::run({"submit", "interactive.count", "--input", R"({"steps":2000,"delay_ms":20})",
                                          "--id", "gone-1", "--nats", server.url()},
                                         {}, 30s);
  INFO(submitted);
  REQUIRE(submitted.code == 0);
  // The task runs and has published progress: its host has results in flight when the server dies.
  bool progressed = false;
  const auto running = std::chrono::steady_clock::now() + 15s;
  while (!progressed && std::chrono::steady_clock::now() < running) {
    const cli::Result st = cli::run({"status", "gone-1", "--json", "--nats", server.url()}, {}, 30s);
    progressed = st.code == 0 && st.out.find("\"RUNNING\"") != std::string::npos &&
                 st.out.find("\"current\"") != std::string::npos;
    if (!progressed) std::this_thread::sleep_for(100ms);
  }
  REQUIRE_MESSAGE(progressed, log());
  std::this_thread::sleep_for(300ms);
  server.kill();
  std::this_thread::sleep_for(1s);
  host.signal(SIGTERM);
  const auto signalled = std::chrono::steady_clock::now();
  // The drain grace, then up to 5 s until the server counts as gone, then a teardown that waits for no
  // answer: about 4.5 s here. Waiting on the server took about 55 s once, and 17 s while the liveness
  // beat and the host-key watcher still waited out their 5 s requests one after the other.
  const int status = host.wait(12s);
  MESSAGE("exit " << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - signalled).count()
                  << " ms after SIGTERM (drain grace 500 ms)");
  INFO(log());
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(log().find("(the server is unreachable)") != std::string::npos);
  CHECK(log().find("config: the [api] table is ignored: serve --transport nats has no local API") != std::string::npos);
}

TEST_CASE("serve with no server to reach stops at once on SIGTERM, and a NATS host's state directory is its own") {
  taskhost::testing::TempDir dir{"taskhost-nats-none"};
  const auto plugins = cli::make_plugins_dir(dir.path(), {cli::built_plugin("hello-c.so")});
  const auto log_file = dir.path() / "host.log";
  auto log = [&] {
    std::ifstream in(log_file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  {
    // Port 1: nothing listens. It keeps trying for 30 s, and used to hold a SIGTERM until then.
    Subprocess host{{cli::taskhost_bin().string(), "serve", "--transport", "nats", "--nats", "nats://127.0.0.1:1",
                     "--plugins", plugins.string(), "--worker-id", "unreached"},
                    log_file};
    std::this_thread::sleep_for(1s);
    host.signal(SIGTERM);
    const int status = host.wait(5s);
    INFO(log());
    REQUIRE(status != -1);  // exited within 5 s of the signal
    CHECK(log().find("stopped by a signal while waiting for it") != std::string::npos);
  }
  // Two NATS hosts on one --state: the second is refused, naming the first, as on the local transport.
  NatsServer server{server_options(dir.path() / "nats")};
  const auto state = dir.path() / "state";
  const auto first_log = dir.path() / "first.log";
  Subprocess first{{cli::taskhost_bin().string(), "serve", "--transport", "nats", "--nats", server.url(), "--plugins",
                    plugins.string(), "--worker-id", "first", "--state", state.string()},
                   first_log};
  REQUIRE(taskhost::testing::eventually([&] {
    std::ifstream in(first_log);
    return std::string(std::istreambuf_iterator<char>(in), {}).find("pulling") != std::string::npos;
  }, 20s, 50ms));
  const cli::Result second = cli::run({"serve", "--transport", "nats", "--nats", server.url(), "--plugins",
                                       plugins.string(), "--worker-id", "second", "--state", state.string()},
                                      {}, 20s);
  INFO(second);
  CHECK(second.code == 1);
  CHECK(second.err.find("is in use by another taskhost (pid " + std::to_string(first.pid()) + ")") != std::string::npos);
}
