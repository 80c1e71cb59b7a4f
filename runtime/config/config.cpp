#include "config/config.hpp"

#include "common/path_problem.hpp"

#include "config/endpoint.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <toml++/toml.h>

#include <unistd.h>

#include <climits>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <unordered_map>

namespace taskhost::config {
namespace {

// Walks one TOML table: every key must be claimed by a handler, every value must have the handler's
// type and range. Errors name source, line and the dotted key.
class Section {
 public:
  Section(const toml::table& table, std::string prefix, const std::string& source,
          const std::filesystem::path& base)
      : table_(table), prefix_(std::move(prefix)), source_(source), base_(base) {}

  using Handler = std::function<void(const toml::node&, const std::string& key)>;

  void on(std::string key, Handler handler) { handlers_.emplace(std::move(key), std::move(handler)); }

  // Runs the handlers for present keys; an unknown key is an error.
  void run() const {
    for (auto&& [key, node] : table_) {
      const std::string name(key.str());
      const auto it = handlers_.find(name);
      if (it == handlers_.end()) {
        throw ConfigError(fmt::format("{}:{}: unknown key '{}'", source_, line_of(key.source(), node),
                                      dotted(name)));
      }
      it->second(node, dotted(name));
    }
  }

  [[noreturn]] void fail(const toml::node& node, const std::string& key, const std::string& why) const {
    throw ConfigError(fmt::format("{}:{}: {}: {}", source_, node.source().begin.line, key, why));
  }

  std::string string(const toml::node& node, const std::string& key) const {
    const auto* s = node.as_string();
    if (!s) fail(node, key, fmt::format("must be a string, not {}", type_name(node)));
    return s->get();
  }

  int64_t integer(const toml::node& node, const std::string& key, int64_t min, int64_t max) const {
    const auto* i = node.as_integer();
    if (!i) fail(node, key, fmt::format("must be an integer, not {}", type_name(node)));
    const int64_t v = i->get();
    if (v < min) fail(node, key, fmt::format("must be at least {}, not {}", min, v));
    if (v > max) fail(node, key, fmt::format("must be at most {}, not {}", max, v));
    return v;
  }

  bool boolean(const toml::node& node, const std::string& key) const {
    const auto* b = node.as_boolean();
    if (!b) fail(node, key, fmt::format("must be true or false, not {}", type_name(node)));
    return b->get();
  }

  std::filesystem::path path(const toml::node& node, const std::string& key) const {
    const std::filesystem::path p = string(node, key);
    if (p.empty()) fail(node, key, "must not be empty");
    return p.is_absolute() || base_.empty() ? p : base_ / p;
  }

  const toml::table& table(const toml::node& node, const std::string& key) const {
    const auto* t = node.as_table();
    if (!t) fail(node, key, fmt::format("must be a table, not {}", type_name(node)));
    return *t;
  }

  Section sub(const toml::node& node, const std::string& key) const {
    return Section(table(node, key), key, source_, base_);
  }

  const std::string& source() const { return source_; }
  const std::filesystem::path& base() const { return base_; }

 private:
  std::string dotted(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }

  static toml::source_index line_of(const toml::source_region& key_src, const toml::node& node) {
    return key_src.begin.line ? key_src.begin.line : node.source().begin.line;
  }

  static std::string type_name(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::table: return "a table";
      case toml::node_type::array: return "an array";
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      default: return "a date/time";
    }
  }

  const toml::table& table_;
  std::string prefix_;
  const std::string& source_;
  const std::filesystem::path& base_;
  std::unordered_map<std::string, Handler> handlers_;
};

constexpr int64_t kMaxU32 = std::numeric_limits<uint32_t>::max();
constexpr int64_t kMaxCount = 1'000'000;

void read_api(const Section& parent, const toml::node& node, const std::string& key, Config& c) {
  Section s = parent.sub(node, key);
  s.on("address", [&](const toml::node& n, const std::string& k) {
    std::string why;
    const auto value = s.string(n, k);
    if (!parse_endpoint(value, &why)) s.fail(n, k, fmt::format("'{}': {}", value, why));
    c.api_address = value;
  });
  s.on("unix_socket", [&](const toml::node& n, const std::string& k) {
    c.api_unix_socket = s.string(n, k).empty() ? std::string() : s.path(n, k).string();
  });
  s.on("idle_timeout_ms", [&](const toml::node& n, const std::string& k) {
    c.api_idle_timeout = std::chrono::milliseconds(s.integer(n, k, 0, 3'600'000));
  });
  s.on("allowed_hosts", [&](const toml::node& n, const std::string& k) {
    const auto* list = n.as_array();
    if (!list) s.fail(n, k, "must be an array of host names, like [\"taskhost.internal\"]");
    c.api_allowed_hosts.clear();
    for (const auto& item : *list) {
      const std::string name = s.string(item, k);
      if (name.empty() || name.find_first_of(" :/[]") != std::string::npos) {
        s.fail(item, k, fmt::format("'{}' is not a host name (give the name alone, without a port)", name));
      }
      c.api_allowed_hosts.push_back(name);
    }
  });
  s.run();
}

plugin::Isolation isolation(const Section& s, const toml::node& node, const std::string& key) {
  const std::string value = s.string(node, key);
  if (value == "in_process") return plugin::Isolation::in_process;
  if (value == "process") return plugin::Isolation::process;
  s.fail(node, key, fmt::format("must be \"in_process\" or \"process\", not \"{}\"", value));
}

void read_plugins(const Section& parent, const toml::node& node, const std::string& key, Config& c) {
  Section s = parent.sub(node, key);
  s.on("watch", [&](const toml::node& n, const std::string& k) { c.watch_plugins = s.boolean(n, k); });
  s.on("settle_ms", [&](const toml::node& n, const std::string& k) {
    c.watch_settle = std::chrono::milliseconds(s.integer(n, k, 0, 60'000));
  });
  s.on("rescan_interval_ms", [&](const toml::node& n, const std::string& k) {
    c.watch_rescan_interval = std::chrono::milliseconds(s.integer(n, k, 100, 3'600'000));
  });
  s.on("drain_deadline_ms", [&](const toml::node& n, const std::string& k) {
    c.drain_deadline = std::chrono::milliseconds(s.integer(n, k, 0, 86'400'000));
  });
  s.on("migrate_on_reload", [&](const toml::node& n, const std::string& k) { c.migrate_on_reload = s.boolean(n, k); });
  s.on("load_timeout_ms", [&](const toml::node& n, const std::string& k) {
    c.load_timeout = std::chrono::milliseconds(s.integer(n, k, 0, 3'600'000));
  });
  s.on("isolation", [&](const toml::node& n, const std::string& k) { c.isolation = isolation(s, n, k); });
  s.on("process_program", [&](const toml::node& n, const std::string& k) {
    c.plugin_process_program = s.path(n, k);
    // Checked by serve (require_plugins_dir), not here: a client reading the host's config for its
    // address may run where that program is not.
    c.plugin_process_program_at = fmt::format("{}:{}: {}", s.source(), n.source().begin.line, k);
  });
  s.on("process_call_timeout_ms", [&](const toml::node& n, const std::string& k) {
    c.plugin_process_call_timeout = std::chrono::milliseconds(s.integer(n, k, 0, 86'400'000));
  });
  // [plugins.files."NAME.so"]: settings of one plugin file, by its name in the plugins directory.
  s.on("files", [&](const toml::node& n, const std::string& k) {
    for (auto&& [file, settings] : s.table(n, k)) {
      const std::string name(file.str());
      const std::string file_key = k + ".\"" + name + "\"";
      if (name.find('/') != std::string::npos || !name.ends_with(".so")) {
        s.fail(settings, file_key, "must be a plugin file's name in the plugins directory (NAME.so)");
      }
      Section f = s.sub(settings, file_key);
      f.on("isolation", [&](const toml::node& fn, const std::string& fk) { c.file_isolation[name] = isolation(f, fn, fk); });
      f.run();
    }
  });
  s.run();
}

void read_log(const Section& parent, const toml::node& node, const std::string& key, Config& c) {
  Section s = parent.sub(node, key);
  s.on("format", [&](const toml::node& n, const std::string& k) {
    const auto value = s.string(n, k);
    const auto f = log::parse_format(value);
    if (!f) s.fail(n, k, fmt::format("must be \"text\" or \"json\", not \"{}\"", value));
    c.log_format = *f;
  });
  s.on("level", [&](const toml::node& n, const std::string& k) {
    const auto value = s.string(n, k);
    const auto l = log::parse_level(value);
    if (!l) s.fail(n, k, fmt::format("must be \"debug\", \"info\", \"warn\" or \"error\", not \"{}\"", value));
    c.log_level = *l;
  });
  s.run();
}

void read_limits(const Section& parent, const toml::node& node, const std::string& key, Config& c) {
  Section s = parent.sub(node, key);
  s.on("max_active", [&](const toml::node& n, const std::string& k) {
    c.max_active = static_cast<size_t>(s.integer(n, k, 1, kMaxCount));
  });
  s.on("worker_threads", [&](const toml::node& n, const std::string& k) {
    c.worker_threads = static_cast<size_t>(s.integer(n, k, 0, 1024));
  });
  s.on("max_worker_threads", [&](const toml::node& n, const std::string& k) {
    c.max_worker_threads = static_cast<size_t>(s.integer(n, k, 0, 1024));
  });
  s.on("max_plugin_payload_bytes", [&](const toml::node& n, const std::string& k) {
    c.max_plugin_payload = static_cast<size_t>(s.integer(n, k, 1024, int64_t{1} << 30));
  });
  s.on("kinds", [&](const toml::node& n, const std::string& k) {
    const auto& kinds = s.table(n, k);
    for (auto&& [kind, limit] : kinds) {
      const std::string name(kind.str());
      if (name.empty()) s.fail(limit, k + ".\"\"", "a kind name is empty");
      c.kind_limits[name] = static_cast<size_t>(s.integer(limit, k + ".\"" + name + "\"", 1, kMaxCount));
    }
  });
  s.run();
  // The pool would quietly raise its maximum to the core size.
  if (c.worker_threads > 0 && c.max_worker_threads > 0 && c.worker_threads > c.max_worker_threads) {
    parent.fail(node, key,
                fmt::format("worker_threads ({}) is above max_worker_threads ({})", c.worker_threads, c.max_worker_threads));
  }
}

void read_tasks(const Section& parent, const toml::node& node, const std::string& key, Config& c) {
  Section s = parent.sub(node, key);
  s.on("heartbeat_interval_secs", [&](const toml::node& n, const std::string& k) {
    c.heartbeat_interval_secs = static_cast<uint32_t>(s.integer(n, k, 0, 3600));
  });
  s.on("cancel_deadline_ms", [&](const toml::node& n, const std::string& k) {
    c.cancel_deadline = std::chrono::milliseconds(s.integer(n, k, 1, 3'600'000));
  });
  s.on("drain_grace_ms", [&](const toml::node& n, const std::string& k) {
    c.drain_grace = std::chrono::milliseconds(s.integer(n, k, 0, 3'600'000));
  });
  s.on("max_plugin_crashes", [&](const toml::node& n, const std::string& k) {
    c.max_plugin_crashes = static_cast<uint32_t>(s.integer(n, k, 0, 1000));
  });
  s.on("keep_ended_secs", [&](const toml::node& n, const std::string& k) {
    c.keep_ended = std::chrono::seconds(s.integer(n, k, 0, int64_t{10} * 365 * 24 * 3600));
  });
  s.on("ended_memory_mb", [&](const toml::node& n, const std::string& k) {
    c.ended_memory_bytes = static_cast<size_t>(s.integer(n, k, 1, 1 << 20)) << 20;
  });
  s.run();
}

void read_nats(const Section& parent, const toml::node& node, const std::string& key, NatsConfig& c) {
  Section s = parent.sub(node, key);
  auto text = [&](std::string& out) {
    return [&s, &out](const toml::node& n, const std::string& k) { out = s.string(n, k); };
  };
  auto file = [&](std::string& out) {
    return [&s, &out](const toml::node& n, const std::string& k) {
      out = s.string(n, k).empty() ? std::string() : s.path(n, k).string();
    };
  };
  auto u32 = [&](uint32_t& out, int64_t min) {
    return [&s, &out, min](const toml::node& n, const std::string& k) {
      out = static_cast<uint32_t>(s.integer(n, k, min, kMaxU32));
    };
  };
  s.on("url", [&](const toml::node& n, const std::string& k) {
    c.url = s.string(n, k);
    if (c.url.empty()) s.fail(n, k, "must not be empty");
  });
  s.on("credentials", file(c.credentials));
  s.on("user", text(c.user));
  s.on("password_file", file(c.password_file));
  s.on("token_file", file(c.token_file));
  s.on("nkey_seed_file", file(c.nkey_seed_file));
  s.on("tls_ca", file(c.tls_ca));
  s.on("tls_cert", file(c.tls_cert));
  s.on("tls_key", file(c.tls_key));
  s.on("ack_mode", [&](const toml::node& n, const std::string& k) {
    const auto value = s.string(n, k);
    if (value == "on_receipt") c.ack_mode = NatsConfig::AckMode::on_receipt;
    else if (value == "on_completion") c.ack_mode = NatsConfig::AckMode::on_completion;
    else s.fail(n, k, fmt::format("must be \"on_receipt\" or \"on_completion\", not \"{}\"", value));
  });
  s.on("stream_prefix", [&](const toml::node& n, const std::string& k) {
    c.stream_prefix = s.string(n, k);
    if (const std::string why = stream_prefix_problem(c.stream_prefix); !why.empty()) s.fail(n, k, why);
  });
  s.on("max_deliver", u32(c.max_deliver, 1));
  s.on("ack_wait_secs", u32(c.ack_wait_secs, 1));
  s.on("kv_bucket", [&](const toml::node& n, const std::string& k) {
    c.kv_bucket = s.string(n, k);
    if (const std::string why = stream_prefix_problem(c.kv_bucket); !why.empty()) s.fail(n, k, why);
  });
  s.on("host_dead_after_secs", u32(c.host_dead_after_secs, 1));
  s.run();
  auto conflict = [&](const char* what) {
    throw ConfigError(fmt::format("{}:{}: {}: {}", s.source(), node.source().begin.line, key, what));
  };
  if (c.user.empty() != c.password_file.empty()) conflict("user and password_file must be set together");
  if (!c.token_file.empty() && !c.user.empty()) conflict("token_file and user/password_file are alternatives: give one");
  if (!c.nkey_seed_file.empty()) {
    if (!c.credentials.empty()) conflict("nkey_seed_file and credentials are alternatives: give one");
    if (!c.user.empty()) conflict("nkey_seed_file and user/password_file are alternatives: give one");
    if (!c.token_file.empty()) conflict("nkey_seed_file and token_file are alternatives: give one");
  }
  if ((c.tls_cert.empty()) != (c.tls_key.empty())) {
    throw ConfigError(fmt::format("{}:{}: {}: tls_cert and tls_key must be set together", s.source(),
                                  node.source().begin.line, key));
  }
}

}  // namespace

std::string stream_prefix_problem(std::string_view prefix) {
  // It names JetStream streams and, lowercased, the KV bucket, whose names the server limits to these
  // (a '$' or an accented letter passed a looser check, then failed the bucket's creation naming no key).
  const bool ok = !prefix.empty() && std::all_of(prefix.begin(), prefix.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
  });
  if (ok) return {};
  return fmt::format("must be non-empty letters, digits, '_' or '-' (it names streams and a KV bucket), not \"{}\"",
                     prefix);
}

std::string_view to_string(NatsConfig::AckMode mode) {
  return mode == NatsConfig::AckMode::on_receipt ? "on_receipt" : "on_completion";
}

Config parse_config(std::string_view text, const std::string& source, const std::filesystem::path& base) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}:{}: {}", source, e.source().begin.line, e.description()));
  }
  Config c;
  Section s(root, "", source, base);
  s.on("plugins_dir", [&](const toml::node& n, const std::string& k) { c.plugins_dir = s.path(n, k); });
  s.on("state_dir", [&](const toml::node& n, const std::string& k) {
    c.state_dir = s.path(n, k);
    c.state_dir_given = true;
  });
  s.on("worker_id", [&](const toml::node& n, const std::string& k) {
    c.worker_id = s.string(n, k);
    // Empty would quietly mean the host name: leave the key out for that.
    if (c.worker_id.empty()) s.fail(n, k, "is empty; leave it out to use the host name");
  });
  s.on("transport", [&](const toml::node& n, const std::string& k) {
    c.transport = s.string(n, k);
    if (c.transport != "local" && c.transport != "nats")
      s.fail(n, k, fmt::format("must be \"local\" or \"nats\", not \"{}\"", c.transport));
  });
  s.on("plugins", [&](const toml::node& n, const std::string& k) { read_plugins(s, n, k, c); });
  s.on("api", [&](const toml::node& n, const std::string& k) {
    c.api_configured = true;
    read_api(s, n, k, c);
  });
  s.on("log", [&](const toml::node& n, const std::string& k) { read_log(s, n, k, c); });
  s.on("limits", [&](const toml::node& n, const std::string& k) { read_limits(s, n, k, c); });
  s.on("tasks", [&](const toml::node& n, const std::string& k) { read_tasks(s, n, k, c); });
  s.on("nats", [&](const toml::node& n, const std::string& k) { read_nats(s, n, k, c.nats); });
  s.run();
  return c;
}

Config load_config(const std::filesystem::path& file) {
  std::error_code ec;
  // A directory opens as a stream and reads as nothing: it would have been an empty config.
  if (std::filesystem::is_directory(file, ec)) {
    throw ConfigError(fmt::format("cannot read config file {}: it is a directory", file.string()));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("cannot read config file {}", file.string()));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(fmt::format("cannot read config file {}", file.string()));
  return parse_config(text.str(), file.string(), file.parent_path());
}

void require_plugins_dir(const Config& config) {
  if (const std::string why = path_problem(config.plugins_dir, PathWant::directory); !why.empty()) {
    throw ConfigError(fmt::format("plugins directory '{}' {} (set --plugins or plugins_dir)", config.plugins_dir.string(), why));
  }
  // A wrong program would otherwise start a host on which every isolated plugin fails.
  if (!config.plugin_process_program.empty()) {
    if (const std::string why = path_problem(config.plugin_process_program, PathWant::program); !why.empty()) {
      throw ConfigError(fmt::format("{}: '{}' {}", config.plugin_process_program_at.empty() ? "process_program"
                                                                                            : config.plugin_process_program_at,
                                    config.plugin_process_program.string(), why));
    }
  }
}

std::string effective_worker_id(const Config& config) {
  if (!config.worker_id.empty()) return config.worker_id;
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0') return name;
  return "taskhost";
}

}  // namespace taskhost::config
