// taskhost.toml: everything an operator sets for `taskhost serve`. samples/taskhost.toml documents
// every key; the defaults below are what an absent key means.
//
// Loading is strict: an unknown key, a value of the wrong type or out of range is a ConfigError whose
// message names the file, the line and the dotted key ("taskhost.toml:12: limits.max_active: must be
// at least 1, not 0"). Relative paths in a file are relative to the file's directory.
//
// Thread rule: plain values; load once, then share read-only.
#pragma once

#include "common/log.hpp"
#include "plugin/isolation.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the NATS JetStream transport (runtime/transport/nats) consumes: the [nats] table.
struct NatsConfig {
  enum class AckMode {
    on_receipt,     // ack when a host takes the task; the orchestrator owns retries (stepflow's way)
    on_completion,  // ack when it ends; JetStream redelivery is the retry, in-progress acks the heartbeat
  };
  std::string url = "nats://127.0.0.1:4222";
  std::string credentials;  // .creds file; empty = none
  // User/password or token authorization. The secrets are read from files (first line) when connecting,
  // so a taskhost.toml never holds one; a user/password or token in the URL works too.
  std::string user;
  std::string password_file;
  std::string token_file;
  // NKey authorization: a file holding the user's seed ("SU..."); the host derives the public key the
  // server lists. An alternative to credentials, user/password_file and token_file.
  std::string nkey_seed_file;
  std::string tls_ca;       // PEM files; empty = no TLS unless the URL says tls://
  std::string tls_cert;
  std::string tls_key;
  AckMode ack_mode = AckMode::on_receipt;
  std::string stream_prefix = "TASKHOST";
  uint32_t max_deliver = 5;             // starts of a task (deliveries, rescues) before it ends "poisoned"
  uint32_t ack_wait_secs = 30;          // on_completion: redelivery after this long without an ack
  std::string kv_bucket;                // task ownership and checkpoints; empty = the prefix's (Names)
  uint32_t host_dead_after_secs = 15;   // another host re-attaches a dead host's tasks after this
};

std::string_view to_string(NatsConfig::AckMode mode);

// Why `prefix` cannot name a deployment's streams (JetStream stream names may not contain these), or
// empty when it can. For [nats] stream_prefix and --nats-prefix alike: a bad one otherwise surfaced as a
// server timeout after 10 s of retries.
std::string stream_prefix_problem(std::string_view prefix);

struct Config {
  std::filesystem::path plugins_dir = "plugins";
  // [plugins]: hot reload. With `watch`, files copied, renamed or deleted in plugins_dir are picked up by
  // themselves (inotify); SIGHUP and `taskhost reload` work either way.
  bool watch_plugins = true;
  std::chrono::milliseconds watch_settle{150};             // a file written in place must hold still this long
  std::chrono::milliseconds watch_rescan_interval{2'000};  // full comparison of the directory (lost events)
  std::chrono::milliseconds load_timeout{10'000};          // a plugin file still loading after this fails; 0 = none
  std::chrono::milliseconds drain_deadline{0};             // old generation's tasks cancelled after; 0 = never
  bool migrate_on_reload = false;                          // move re-attachable tasks on every switch
  // isolation = "process" runs a plugin in a process of its own (plugin/isolation.hpp): for every file,
  // or per file in [plugins.files."NAME.so"].
  plugin::Isolation isolation = plugin::Isolation::in_process;
  std::map<std::string, plugin::Isolation> file_isolation;
  std::filesystem::path plugin_process_program;            // empty = taskhost-plugin-child next to taskhost
  std::string plugin_process_program_at;                   // "FILE:LINE: plugins.process_program", for its error
  std::chrono::milliseconds plugin_process_call_timeout{30'000};  // an isolated call running longer: killed
  // The host's own state: the local transport's SQLite store, and the crash ledger (host/crash_ledger.hpp).
  // A NATS host keeps a crash ledger only when one is given (state_dir_given: the key or --state).
  std::filesystem::path state_dir = ".taskhost-state";
  bool state_dir_given = false;
  std::string worker_id;              // empty = the machine's host name
  std::string transport = "local";    // "local" or "nats"

  std::string api_address = "127.0.0.1:7411";  // HOST:PORT, or unix:PATH
  bool api_configured = false;        // the file has an [api] table (serve on NATS warns: it has no API)
  std::string api_unix_socket;        // an extra unix socket to listen on; empty = none
  std::chrono::milliseconds api_idle_timeout{60'000};  // idle keep-alive connections closed; 0 = never
  // Names clients put in the Host header besides IP literals, "localhost" and api_address's own host
  // (api/request_guard.hpp refuses the rest: DNS rebinding).
  std::vector<std::string> api_allowed_hosts;

  log::Format log_format = log::Format::text;
  log::Level log_level = log::Level::info;

  size_t max_active = 256;                      // tasks started and not yet ended, host-wide
  std::map<std::string, size_t> kind_limits;    // per kind
  size_t worker_threads = 0;                    // plugin-call pool at start; 0 = automatic
  size_t max_worker_threads = 0;                // what it may grow to while calls block; 0 = automatic
  size_t max_plugin_payload = 8u << 20;         // bytes a plugin may send in one payload (RouterOptions)

  uint32_t heartbeat_interval_secs = 5;         // for submitted tasks that do not set one
  std::chrono::milliseconds cancel_deadline{10'000};
  std::chrono::milliseconds drain_grace{30'000};
  // Local transport: a task in a call when the host died of a fatal signal this many times is failed at
  // the next start instead of started again (transport/local LocalOptions); 0 = no limit. Also, any
  // transport: an isolated plugin's task re-attached after its process ended beside it, until this many
  // have (RouterOptions::max_plugin_crashes).
  uint32_t max_plugin_crashes = 2;
  // Local transport: ended tasks are deleted this long after they ended (LocalOptions::keep_ended); 0 = never.
  std::chrono::seconds keep_ended{std::chrono::hours(24 * 7)};
  // Local transport: ended tasks kept in memory with their outputs, up to this many bytes (older ones
  // are read from the store; LocalOptions::finished_memory_bytes).
  size_t ended_memory_bytes = size_t{64} << 20;

  NatsConfig nats;
};

// Parses TOML text; `source` names it in errors (a file name). Relative paths resolve against `base`.
Config parse_config(std::string_view text, const std::string& source, const std::filesystem::path& base);

// Reads and parses `file`. A missing or unreadable file is a ConfigError naming it.
Config load_config(const std::filesystem::path& file);

// The worker id to use: config's, else the host name, else "taskhost".
std::string effective_worker_id(const Config& config);

// Throws ConfigError naming the plugins directory and what is wrong with it (missing, a file, a
// dangling link, ...) unless it is a directory, or naming process_program (file, line, key) unless it is
// a program we may run. Both serve loops check it before anything starts.
void require_plugins_dir(const Config& config);

}  // namespace taskhost::config
