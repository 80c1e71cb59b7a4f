// The `taskhost` binary without a running host (or with one that must refuse to start): --help on every
// subcommand, bad arguments, an unreachable API, config errors naming key and line, inspect, new-plugin.
// Every error must be ONE line on stderr with a non-zero exit code.
#include "cli_harness.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

#include <fstream>

using namespace taskhost::clitest;

namespace {

void check_one_line_error(const Result& r, int code, const std::string& needle) {
  INFO(r);
  CHECK(r.code == code);
  CHECK(lines(r.err).size() == 1);
  CHECK(r.err.find(needle) != std::string::npos);
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

}  // namespace

TEST_CASE("--help on the binary and on every subcommand") {
  const Result top = run({"--help"});
  INFO(top);
  CHECK(top.code == 0);
  for (const std::string cmd : {"serve", "submit", "send", "cancel", "status", "watch", "plugins", "reload", "inspect",
                                "new-plugin"}) {
    CHECK(top.out.find("  " + cmd + " ") != std::string::npos);
    const Result r = run({cmd, "--help"});
    INFO(cmd << ": " << r);
    CHECK(r.code == 0);
    CHECK(r.out.find("Usage: taskhost " + cmd) != std::string::npos);
    CHECK(r.out.find("--help") != std::string::npos);
  }
  // Every read takes --json, every client command --api.
  for (const std::string cmd : {"submit", "send", "cancel", "status", "watch", "plugins", "reload"}) {
    const Result r = run({cmd, "--help"});
    CHECK(r.out.find("--api") != std::string::npos);
    CHECK(r.out.find("--json") != std::string::npos);
  }
  CHECK(run({"inspect", "--help"}).out.find("--json") != std::string::npos);
}

TEST_CASE("--version names the build and the plugin ABI it loads") {
  const Result r = run({"--version"});
  CHECK(r.code == 0);
  INFO(r);
  CHECK(r.out.rfind("taskhost " TASKHOST_EXPECTED_VERSION " (plugin ABI ", 0) == 0);
  CHECK(r.out.ends_with(")\n"));
}

TEST_CASE("bad arguments are one line and exit 2") {
  check_one_line_error(run({}), 2, "missing command");
  check_one_line_error(run({"frobnicate"}), 2, "unknown command 'frobnicate'");
  check_one_line_error(run({"submit", "hello.greet", "--bogus"}), 2, "--bogus");
  check_one_line_error(run({"submit"}), 2, "missing argument 'kind'");
  check_one_line_error(run({"send"}), 2, "missing argument 'id'");
  check_one_line_error(run({"status", "--nats", ""}), 2, "--nats needs a server URL");
  check_one_line_error(run({"submit", "a", "b"}), 2, "too many arguments");
  check_one_line_error(run({"submit", "hello.greet", "--input", "{not json"}), 2, "--input is not valid JSON");
  check_one_line_error(run({"submit", "hello.greet", "--input", "@/nonexistent/in.json"}), 2,
                       "--input: file '/nonexistent/in.json' does not exist");
  // A file named by @ says which file, and what is wrong with it.
  check_one_line_error(run({"submit", "hello.greet", "--input", "@/tmp"}), 2,
                       "--input: file '/tmp' is a directory, not a regular file");
  const TempDir dir;
  const auto bad = dir.path() / "bad.json";
  std::ofstream(bad) << "{\"name\":";
  check_one_line_error(run({"submit", "hello.greet", "--input", "@" + bad.string()}), 2,
                       "--input (file '" + bad.string() + "') is not valid JSON");
  // The JSON parser's own multi-line message and its Struct jargon, made one line that says the fault.
  check_one_line_error(run({"submit", "hello.greet", "--input", R"({"ms":1e400})"}), 2,
                       "--input: Number exceeds the range of double.");
  check_one_line_error(run({"submit", "hello.greet", "--input", R"({"a":{"b":1,"b":2}})"}), 2,
                       "--input: an object has the key 'b' twice");
  // An empty id (a script's unset variable) is not a new UUID: that would run the work twice.
  check_one_line_error(run({"submit", "hello.greet", "--id", ""}), 2, "--id is empty");
  check_one_line_error(run({"send", "t1"}), 2, "text");
  check_one_line_error(run({"send", "t1", "hi", "--data", "[1,"}), 2, "--data is not valid JSON");
  check_one_line_error(run({"status", "--api", "nowhere"}), 2, "--api 'nowhere'");
  check_one_line_error(run({"watch", "--timeout", "soon"}), 2, "timeout");
  // "-1" read into an unsigned was its maximum: no limit at all.
  check_one_line_error(run({"watch", "--timeout", "-1"}), 2, "--timeout must be 0 (no limit) or a number of seconds, not -1");
  check_one_line_error(run({"submit", "hello.greet", "--wait", "--timeout", "-3"}), 2, "--timeout must be 0");
  // now + this many seconds overflowed the clock: the watch ended at once with exit 0.
  check_one_line_error(run({"watch", "--timeout", "9223372037"}), 2,
                       "--timeout must be at most 315360000 seconds (ten years; 0 is no limit), not 9223372037");
  check_one_line_error(run({"submit", "hello.greet", "--timeout", "5"}), 2, "--timeout needs --wait");
  check_one_line_error(run({"serve", "--transport", "pigeon"}), 2, "--transport must be local or nats");
  // A stream prefix JetStream cannot use is refused up front, not after 10 s of server timeouts.
  check_one_line_error(run({"status", "--nats", "nats://127.0.0.1:1", "--nats-prefix", "A B"}), 2,
                       "--nats-prefix must be non-empty letters, digits");
  check_one_line_error(run({"serve", "--transport", "nats", "--nats-prefix", "a.b"}), 2,
                       "--nats-prefix must be non-empty letters, digits");
  check_one_line_error(run({"serve", "--transport", "nats", "--api", "127.0.0.1:0"}), 2,
                       "--api: serve --transport nats has no local API");
}

TEST_CASE("an unreachable API is one line naming the address, exit 1") {
  // A port that was just free: nothing listens there.
  TempDir dir;
  const Result r = run({"status", "--api", "127.0.0.1:1"});
  check_one_line_error(r, 1, "cannot reach the taskhost API at 127.0.0.1:1");
  // TASKHOST_API is the default address.
  check_one_line_error(run({"plugins"}, {"TASKHOST_API=127.0.0.1:1"}), 1, "127.0.0.1:1");
  check_one_line_error(run({"status", "--api", "unix:" + (dir.path() / "none.sock").string()}), 1,
                       "cannot reach the taskhost API at unix:");
}

TEST_CASE("serve refuses a config with errors, naming the file, line and key") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {});
  const fs::path cfg = dir.path() / "taskhost.toml";

  write_file(cfg, "state_dir = \"s\"\n[limits]\nmax_activ = 3\n");
  check_one_line_error(run({"serve", "--config", cfg.string(), "--plugins", plugins.string()}), 1,
                       cfg.string() + ":3: unknown key 'limits.max_activ'");

  write_file(cfg, "[tasks]\ncancel_deadline_ms = \"soon\"\n");
  check_one_line_error(run({"serve", "--config", cfg.string(), "--plugins", plugins.string()}), 1,
                       cfg.string() + ":2: tasks.cancel_deadline_ms: must be an integer, not a string");

  check_one_line_error(run({"serve", "--config", (dir.path() / "missing.toml").string()}), 1,
                       "cannot read config file");
  check_one_line_error(run({"serve", "--plugins", (dir.path() / "no-such-dir").string(), "--state",
                            (dir.path() / "st").string()}),
                       1, "plugins directory");
}

TEST_CASE("serve refuses an address it cannot listen on") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  Host first(plugins, dir.path() / "a");
  const Result r = run({"serve", "--plugins", plugins.string(), "--state", (dir.path() / "b").string(), "--api",
                        first.api()},
                       {}, 10s);
  INFO(r);
  CHECK(r.code == 1);
  CHECK(r.err.find("cannot listen on " + first.api()) != std::string::npos);
}

TEST_CASE("inspect reads a plugin without loading it") {
  const Result ok = run({"inspect", built_plugin("hello-c.so").string(), "--json"});
  INFO(ok);
  REQUIRE(ok.code == 0);
  const auto o = parse_json(ok.out).as_object();
  CHECK(o.at("ok").as_bool());
  CHECK(o.at("has_entry_point").as_bool());
  const auto& m = o.at("manifest").as_object();
  CHECK(str(m, "name") == "hello-c");
  CHECK(m.at("abi_compatible").as_bool());
  bool greet = false;
  for (const auto& k : m.at("kinds").as_array()) greet = greet || k.as_string() == "hello.greet";
  CHECK(greet);

  const Result text = run({"inspect", built_plugin("hello-c.so").string()});
  CHECK(text.code == 0);
  CHECK(text.out.find("kinds:       hello.greet") != std::string::npos);

  TempDir dir;
  const fs::path junk = dir.path() / "junk.so";
  write_file(junk, "this is not an ELF file at all");
  const Result bad = run({"inspect", junk.string(), "--json"});
  INFO(bad);
  CHECK(bad.code == 1);
  CHECK_FALSE(parse_json(bad.out).as_object().at("ok").as_bool());
  CHECK(lines(bad.err).size() == 1);
  CHECK(bad.err.find(junk.string()) != std::string::npos);

  check_one_line_error(run({"inspect", (dir.path() / "absent.so").string()}), 1, "absent.so: does not exist");
  check_one_line_error(run({"inspect", dir.path().string()}), 1, "is a directory, not a plugin file");
  // Not "no such file" for what does exist: the real cause.
  check_one_line_error(run({"inspect", "/dev/null"}), 1, "/dev/null: is a character device, not a plugin file");
  fs::create_symlink(dir.path() / "gone.so", dir.path() / "dangling.so");
  check_one_line_error(run({"inspect", (dir.path() / "dangling.so").string()}), 1, "is a dangling symbolic link");
  fs::create_symlink(dir.path() / "loop-b", dir.path() / "loop-a");
  fs::create_symlink(dir.path() / "loop-a", dir.path() / "loop-b");
  check_one_line_error(run({"inspect", (dir.path() / "loop-a").string()}), 1, "Too many levels of symbolic links");
  check_one_line_error(run({"serve", "--plugins", "/dev/null"}), 1,
                       "plugins directory '/dev/null' is a character device, not a directory");
  // A reason that names the file already does not get it twice.
  const fs::path future = fixture_plugin("abi-major-2.so");
  const Result refused = run({"inspect", future.string()});
  INFO(refused);
  CHECK(refused.code == 1);
  CHECK(refused.err.starts_with("taskhost inspect: " + future.string() + ": ABI refused: plugin ABI 2.0"));
  CHECK(refused.err.find(future.string()) == refused.err.rfind(future.string()));
}

TEST_CASE("new-plugin writes a project, and refuses a bad name") {
  TempDir dir;
  const fs::path dest = dir.path() / "myplug";
  const Result r = run({"new-plugin", "myplug", "--lang", "c", "--dir", dest.string()});
  INFO(r);
  REQUIRE(r.code == 0);
  CHECK(fs::exists(dest / "CMakeLists.txt"));
  const Result bad = run({"new-plugin", "Bad Name!", "--dir", (dir.path() / "x").string()});
  INFO(bad);
  CHECK(bad.code == 2);
  CHECK_FALSE(bad.err.empty());
}
