// taskhost.toml: defaults, the documented sample, and errors that name the file, line and key.
#include "config/config.hpp"
#include "config/endpoint.hpp"
#include "config/host_options.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

namespace fs = std::filesystem;
using namespace taskhost::config;

namespace {

// The error message of parsing `text`, or "" when it parsed.
std::string error_of(const std::string& text) {
  try {
    parse_config(text, "t.toml", "");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("an empty file means every default") {
  const Config c = parse_config("", "t.toml", "");
  CHECK(c.api_address == "127.0.0.1:7411");
  CHECK(c.state_dir == ".taskhost-state");
  CHECK(c.transport == "local");
  CHECK(c.max_active == 256);
  CHECK(c.kind_limits.empty());
  CHECK(c.cancel_deadline.count() == 10'000);
  CHECK(c.nats.ack_mode == NatsConfig::AckMode::on_receipt);
  CHECK(c.log_format == taskhost::log::Format::text);
  CHECK(c.watch_plugins);  // copying a .so into plugins_dir just works
  CHECK(c.watch_settle.count() == 150);
  CHECK(c.watch_rescan_interval.count() == 2'000);
  CHECK(c.drain_deadline.count() == 0);
  CHECK_FALSE(c.migrate_on_reload);
  CHECK(c.api_idle_timeout.count() == 60'000);
  CHECK(c.max_plugin_crashes == 2);
  CHECK(c.keep_ended == std::chrono::hours(24 * 7));
  CHECK(c.ended_memory_bytes == size_t{64} << 20);
  CHECK_FALSE(c.state_dir_given);
}

TEST_CASE("samples/taskhost.toml is valid and sets what it documents") {
  const fs::path sample = fs::path(TASKHOST_SOURCE_DIR) / "samples" / "taskhost.toml";
  const Config c = load_config(sample);
  CHECK(c.plugins_dir == sample.parent_path() / "../build/plugins");  // relative to the file
  CHECK(c.kind_limits.at("interactive.count") == 8);
  CHECK(c.drain_grace.count() == 30'000);
  CHECK(c.nats.kv_bucket.empty());  // the prefix's own bucket
  CHECK(c.nats.max_deliver == 5);
  CHECK(c.watch_plugins);
  CHECK(c.watch_settle.count() == 150);
  CHECK(c.api_idle_timeout.count() == 60'000);
  CHECK(c.keep_ended == std::chrono::hours(24 * 7));
  CHECK(c.ended_memory_bytes == size_t{64} << 20);
}

TEST_CASE("every key can be set") {
  const Config c = parse_config(R"(
plugins_dir = "/p"
state_dir = "/s"
worker_id = "w1"
transport = "nats"
[api]
address = "unix:/tmp/th.sock"
unix_socket = "/tmp/extra.sock"
idle_timeout_ms = 0
allowed_hosts = ["taskhost.internal", "h2"]
[plugins]
watch = false
settle_ms = 40
rescan_interval_ms = 500
drain_deadline_ms = 9000
migrate_on_reload = true
[log]
format = "json"
level = "debug"
[limits]
max_active = 3
worker_threads = 2
max_worker_threads = 6
max_plugin_payload_bytes = 65536
kinds = { "a.b" = 1 }
[tasks]
heartbeat_interval_secs = 0
cancel_deadline_ms = 500
drain_grace_ms = 0
max_plugin_crashes = 0
keep_ended_secs = 0
ended_memory_mb = 3
[nats]
url = "nats://n:4222"
credentials = "/c.creds"
user = "svc"
password_file = "secrets/pw"
tls_ca = "/ca.pem"
tls_cert = "/cert.pem"
tls_key = "/key.pem"
ack_mode = "on_completion"
stream_prefix = "TH"
max_deliver = 9
ack_wait_secs = 7
kv_bucket = "kv"
host_dead_after_secs = 4
)", "t.toml", "/base");
  CHECK(c.plugins_dir == "/p");
  CHECK(c.state_dir == "/s");
  CHECK(c.state_dir_given);
  CHECK(c.worker_id == "w1");
  CHECK(c.transport == "nats");
  CHECK(c.api_address == "unix:/tmp/th.sock");
  CHECK(c.api_unix_socket == "/tmp/extra.sock");
  CHECK(c.api_idle_timeout.count() == 0);
  CHECK(c.api_allowed_hosts == std::vector<std::string>{"taskhost.internal", "h2"});
  CHECK_FALSE(c.watch_plugins);
  CHECK(c.watch_settle.count() == 40);
  CHECK(c.watch_rescan_interval.count() == 500);
  CHECK(c.drain_deadline.count() == 9000);
  CHECK(c.migrate_on_reload);
  CHECK(c.log_format == taskhost::log::Format::json);
  CHECK(c.log_level == taskhost::log::Level::debug);
  CHECK(c.max_active == 3);
  CHECK(c.worker_threads == 2);
  CHECK(c.max_worker_threads == 6);
  CHECK(c.max_plugin_payload == 65536);
  CHECK(taskhost::config::host_options(c).router.max_plugin_payload == 65536);
  CHECK(c.kind_limits.at("a.b") == 1);
  CHECK(c.heartbeat_interval_secs == 0);
  CHECK(c.cancel_deadline.count() == 500);
  CHECK(c.max_plugin_crashes == 0);
  CHECK(taskhost::config::host_options(c).router.max_plugin_crashes == 0);  // isolated tasks: no limit
  CHECK(c.keep_ended.count() == 0);
  CHECK(c.ended_memory_bytes == size_t{3} << 20);
  CHECK(c.nats.ack_mode == NatsConfig::AckMode::on_completion);
  CHECK(c.nats.tls_key == "/key.pem");
  CHECK(c.nats.user == "svc");
  CHECK(c.nats.password_file == "/base/secrets/pw");  // relative to the config file's directory
  CHECK(c.nats.host_dead_after_secs == 4);
  CHECK(effective_worker_id(c) == "w1");
}

TEST_CASE("[nats] nkey_seed_file: a path relative to the config file's directory, alone or with TLS") {
  const Config c = parse_config(R"(
[nats]
nkey_seed_file = "keys/w1.nk"
tls_ca = "ca.pem"
)", "t.toml", "/base");
  CHECK(c.nats.nkey_seed_file == "/base/keys/w1.nk");
  CHECK(c.nats.tls_ca == "/base/ca.pem");
  CHECK(parse_config("[nats]\nnkey_seed_file = \"\"\n", "t.toml", "/base").nats.nkey_seed_file.empty());
  CHECK(Config{}.nats.nkey_seed_file.empty());
}

TEST_CASE("host_options: what serve runs with, hot reload included") {
  const Config c = parse_config(R"(
worker_id = "w9"
[plugins]
watch = false
settle_ms = 30
rescan_interval_ms = 700
drain_deadline_ms = 4000
migrate_on_reload = true
load_timeout_ms = 2500
[limits]
max_active = 5
)", "t.toml", "/base");
  const taskhost::HostOptions ho = host_options(c);
  CHECK(ho.plugins_dir == "plugins");
  CHECK(ho.router.worker_id == "w9");
  CHECK(ho.router.max_active == 5);
  CHECK_FALSE(ho.watch);
  CHECK(ho.watcher.settle.count() == 30);
  CHECK(ho.watcher.rescan_interval.count() == 700);
  CHECK(ho.drain_deadline.count() == 4000);
  CHECK(ho.migrate_on_reload);
  CHECK(ho.load_timeout.count() == 2500);
  CHECK(host_options(Config{}).load_timeout.count() == 10'000);
  CHECK(host_options(Config{}).watch);  // on unless turned off
}

TEST_CASE("[plugins] isolation: a default for every file, and per file in [plugins.files.\"NAME.so\"]") {
  const Config c = parse_config(R"(
[plugins]
isolation = "process"
process_program = "bin/taskhost-plugin-child"
process_call_timeout_ms = 5000
[plugins.files."trusted.so"]
isolation = "in_process"
)", "t.toml", fs::path(TASKHOST_BIN_DIR).parent_path());
  const taskhost::HostOptions ho = host_options(c);
  CHECK(ho.isolation.of("/p/other.so") == taskhost::plugin::Isolation::process);
  CHECK(ho.isolation.of("/p/trusted.so") == taskhost::plugin::Isolation::in_process);
  CHECK(ho.isolation.process.program == fs::path(TASKHOST_BIN_DIR) / "taskhost-plugin-child");
  CHECK(ho.isolation.process.call_timeout.count() == 5000);
  CHECK(host_options(Config{}).isolation.process.call_timeout.count() == 30'000);
  CHECK(host_options(Config{}).isolation.of("/p/x.so") == taskhost::plugin::Isolation::in_process);

  CHECK(error_of("[plugins]\nisolation = \"sandbox\"\n") ==
        "t.toml:2: plugins.isolation: must be \"in_process\" or \"process\", not \"sandbox\"");
  CHECK(error_of("[plugins.files.\"x.so\"]\nisolation = 1\n").find("t.toml:2: plugins.files.\"x.so\".isolation: must be a string") == 0);
  CHECK(error_of("[plugins.files.\"x.so\"]\nisolate = \"process\"\n") == "t.toml:2: unknown key 'plugins.files.\"x.so\".isolate'");
  // A program that cannot run would start a host on which every isolated plugin fails: serve refuses it
  // (a client reading the same file for the host's address does not need it).
  const auto serve_error = [](const std::string& text) {
    Config c = parse_config(text, "t.toml", "");
    c.plugins_dir = TASKHOST_SOURCE_DIR;
    try {
      require_plugins_dir(c);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(serve_error("[plugins]\nprocess_program = \"/nonexistent/child\"\n") ==
        "t.toml:2: plugins.process_program: '/nonexistent/child' does not exist");
  CHECK(serve_error("[plugins]\nprocess_program = \"/tmp\"\n") ==
        "t.toml:2: plugins.process_program: '/tmp' is a directory, not a program");
  CHECK(serve_error("[plugins]\nprocess_program = \"" TASKHOST_SOURCE_DIR "/README.md\"\n") ==
        "t.toml:2: plugins.process_program: '" TASKHOST_SOURCE_DIR "/README.md' is not executable");
  CHECK(serve_error("[plugins]\nprocess_program = \"" TASKHOST_BIN_DIR "/taskhost-plugin-child\"\n").empty());
  CHECK(error_of("[plugins]\nprocess_program = \"/nonexistent/child\"\n").empty());  // parsing alone takes it
  CHECK(error_of("[plugins.files.\"sub/x.so\"]\nisolation = \"process\"\n")
            .find("plugins.files.\"sub/x.so\": must be a plugin file's name in the plugins directory") != std::string::npos);
}

TEST_CASE("unknown keys are errors naming the key and its line") {
  CHECK(error_of("plugins_dir = \"p\"\nplugin_dir = \"x\"\n") == "t.toml:2: unknown key 'plugin_dir'");
  CHECK(error_of("[nats]\nurl = \"nats://x\"\n\nurll = \"y\"\n") == "t.toml:4: unknown key 'nats.urll'");
  CHECK(error_of("[limits]\n[limits.kind]\n") .find("unknown key 'limits.kind'") != std::string::npos);
  CHECK(error_of("[bogus]\n").find("t.toml:1: unknown key 'bogus'") == 0);
}

TEST_CASE("bad values are errors naming the key, the line and what was wrong") {
  CHECK(error_of("[limits]\nmax_active = \"lots\"\n") ==
        "t.toml:2: limits.max_active: must be an integer, not a string");
  CHECK(error_of("[limits]\n\nmax_active = 0\n") == "t.toml:3: limits.max_active: must be at least 1, not 0");
  CHECK(error_of("[limits]\nmax_plugin_payload_bytes = 10\n") ==
        "t.toml:2: limits.max_plugin_payload_bytes: must be at least 1024, not 10");
  CHECK(error_of("[tasks]\nended_memory_mb = 0\n") == "t.toml:2: tasks.ended_memory_mb: must be at least 1, not 0");
  CHECK(error_of("[log]\nformat = \"xml\"\n") ==
        "t.toml:2: log.format: must be \"text\" or \"json\", not \"xml\"");
  CHECK(error_of("[api]\naddress = \"localhost\"\n") ==
        "t.toml:2: api.address: 'localhost': expected HOST:PORT or unix:PATH");
  CHECK(error_of("[nats]\nack_mode = \"sometimes\"\n").find("t.toml:2: nats.ack_mode: must be") == 0);
  CHECK(error_of("[nats]\nstream_prefix = \"a.b\"\n").find("t.toml:2: nats.stream_prefix:") == 0);
  // Names JetStream rejects for the KV bucket were let through, and failed later naming no key.
  CHECK(error_of("[nats]\nstream_prefix = \"$SYS\"\n").find("t.toml:2: nats.stream_prefix: must be non-empty letters") == 0);
  CHECK(error_of("[nats]\nstream_prefix = \"pr\u00e9\"\n").find("t.toml:2: nats.stream_prefix:") == 0);
  CHECK(error_of("[nats]\nkv_bucket = \"a.b c\"\n").find("t.toml:2: nats.kv_bucket: must be non-empty letters") == 0);
  CHECK(error_of("[nats]\ntls_cert = \"c.pem\"\n").find("tls_cert and tls_key must be set together") !=
        std::string::npos);
  CHECK(error_of("[nats]\nuser = \"u\"\n") == "t.toml:1: nats: user and password_file must be set together");
  CHECK(error_of("[nats]\nuser = \"u\"\npassword_file = \"p\"\ntoken_file = \"t\"\n") ==
        "t.toml:1: nats: token_file and user/password_file are alternatives: give one");
  CHECK(error_of("[nats]\nnkey_seed_file = \"s.nk\"\ncredentials = \"c.creds\"\n") ==
        "t.toml:1: nats: nkey_seed_file and credentials are alternatives: give one");
  CHECK(error_of("[nats]\nnkey_seed_file = \"s.nk\"\nuser = \"u\"\npassword_file = \"p\"\n") ==
        "t.toml:1: nats: nkey_seed_file and user/password_file are alternatives: give one");
  CHECK(error_of("[nats]\nnkey_seed_file = \"s.nk\"\ntoken_file = \"t\"\n") ==
        "t.toml:1: nats: nkey_seed_file and token_file are alternatives: give one");
  CHECK(error_of("[limits.kinds]\n\"x.y\" = -1\n") ==
        "t.toml:2: limits.kinds.\"x.y\": must be at least 1, not -1");
  CHECK(error_of("transport = \"carrier-pigeon\"\n").find("t.toml:1: transport: must be") == 0);
  CHECK(error_of("api = 5\n") == "t.toml:1: api: must be a table, not an integer");
  CHECK(error_of("[plugins]\nwatch = \"yes\"\n") == "t.toml:2: plugins.watch: must be true or false, not a string");
  CHECK(error_of("[plugins]\nrescan_interval_ms = 5\n") ==
        "t.toml:2: plugins.rescan_interval_ms: must be at least 100, not 5");
  CHECK(error_of("[plugins]\nwatsh = true\n") == "t.toml:2: unknown key 'plugins.watsh'");
  CHECK(error_of("[api]\nidle_timeout_ms = -1\n") == "t.toml:2: api.idle_timeout_ms: must be at least 0, not -1");
  CHECK(error_of("[api]\nallowed_hosts = \"h\"\n").find("t.toml:2: api.allowed_hosts: must be an array") == 0);
  CHECK(error_of("[api]\nallowed_hosts = [\"h:80\"]\n") ==
        "t.toml:2: api.allowed_hosts: 'h:80' is not a host name (give the name alone, without a port)");
  CHECK(error_of("[api]\nallowed_hosts = [3]\n") == "t.toml:2: api.allowed_hosts: must be a string, not an integer");
  // Values that used to be taken quietly for something else.
  CHECK(error_of("worker_id = \"\"\n") == "t.toml:1: worker_id: is empty; leave it out to use the host name");
  CHECK(error_of("[limits.kinds]\n\"\" = 3\n").find("t.toml:2: limits.kinds.\"\": a kind name is empty") == 0);
  CHECK(error_of("[limits]\nworker_threads = 10\nmax_worker_threads = 2\n") ==
        "t.toml:1: limits: worker_threads (10) is above max_worker_threads (2)");
}

TEST_CASE("TOML syntax errors name the line") {
  const auto e = error_of("plugins_dir = \"p\"\nstate_dir = = 3\n");
  CHECK(e.find("t.toml:2: ") == 0);
}

TEST_CASE("a missing config file is an error naming it") {
  try {
    load_config("/nonexistent/taskhost.toml");
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == "cannot read config file /nonexistent/taskhost.toml");
  }
}

TEST_CASE("a directory given as the config file is an error naming it, not an empty config") {
  const auto dir = std::filesystem::temp_directory_path();
  try {
    load_config(dir);
    FAIL("expected ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == "cannot read config file " + dir.string() + ": it is a directory");
  }
}

TEST_CASE("endpoints: host:port, [v6]:port, http:// prefix and unix:path") {
  std::string why;
  auto e = parse_endpoint("127.0.0.1:7411", &why);
  REQUIRE(e);
  CHECK(e->host == "127.0.0.1");
  CHECK(e->port == 7411);
  e = parse_endpoint("http://localhost:0/", &why);
  REQUIRE(e);
  CHECK(e->port == 0);
  e = parse_endpoint("[::1]:80", &why);
  REQUIRE(e);
  CHECK(e->to_string() == "[::1]:80");
  e = parse_endpoint("unix:/run/t.sock", &why);
  REQUIRE(e);
  CHECK(e->is_unix);
  CHECK(e->path == "/run/t.sock");
  CHECK_FALSE(parse_endpoint("127.0.0.1:99999", &why));
  CHECK(why == "port must be a number 0-65535");
  CHECK_FALSE(parse_endpoint(":80", &why));
  CHECK(why == "missing host");
}
