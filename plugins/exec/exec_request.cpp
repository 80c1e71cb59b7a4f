#include "exec_request.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "../common/json_fields.hpp"

namespace exec_plugin {

using taskhost::Status;
using taskhost::plugins::only_members;
using taskhost::plugins::parse_object;
using taskhost::plugins::read_bool;
using taskhost::plugins::read_int;
using taskhost::plugins::read_string;

namespace {

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Status read_argv(const boost::json::object& in, std::vector<std::string>* argv) {
  const boost::json::value* v = in.if_contains("argv");
  if (v == nullptr || v->is_null())
    return Status::InvalidArgument("'argv' is required: a non-empty array of strings, the program first");
  if (!v->is_array() || v->as_array().empty())
    return Status::InvalidArgument("'argv' must be a non-empty array of strings, the program first");
  for (size_t i = 0; i < v->as_array().size(); ++i) {
    const boost::json::value& arg = v->as_array()[i];
    const std::string name = "argv[" + std::to_string(i) + "]";
    if (!arg.is_string()) return Status::InvalidArgument("'" + name + "' must be a string");
    std::string text(arg.as_string());
    if (has_nul(text)) return Status::InvalidArgument("'" + name + "' contains a NUL character");
    if (i == 0 && text.empty()) return Status::InvalidArgument("'argv[0]' (the program) must not be empty");
    argv->push_back(std::move(text));
  }
  return Status::Ok();
}

// kBaseEnv, then the input's "env" members (which win), as KEY=VALUE entries.
Status read_env(const boost::json::object& in, std::vector<std::string>* env, std::string* path) {
  std::map<std::string, std::string> vars;
  for (std::string_view entry : kBaseEnv) {
    const size_t eq = entry.find('=');
    vars[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
  }
  if (const boost::json::value* v = in.if_contains("env"); v != nullptr && !v->is_null()) {
    if (!v->is_object()) return Status::InvalidArgument("'env' must be an object of strings");
    for (const auto& member : v->as_object()) {
      const std::string key(member.key());
      if (key.empty() || key.find('=') != std::string::npos || has_nul(key))
        return Status::InvalidArgument("'env' name '" + key + "' is not a valid variable name");
      if (!member.value().is_string() || has_nul(member.value().as_string()))
        return Status::InvalidArgument("'env." + key + "' must be a string without NUL characters");
      vars[key] = std::string(member.value().as_string());
    }
  }
  for (const auto& [key, value] : vars) env->push_back(key + "=" + value);
  *path = vars.count("PATH") ? vars["PATH"] : std::string();
  return Status::Ok();
}

// argv[0] with a '/' is a path (relative to cwd when one is given); otherwise it is searched in `path`.
Status resolve_program(const std::string& argv0, const std::string& path, const std::optional<std::string>& cwd,
                       std::string* program) {
  if (argv0.find('/') != std::string::npos) {
    const std::string where = (argv0.front() != '/' && cwd) ? *cwd + "/" + argv0 : argv0;
    if (!is_executable_file(where))
      return Status::InvalidArgument("'argv[0]': program '" + argv0 + "' does not exist or is not executable");
    *program = argv0;
    return Status::Ok();
  }
  size_t begin = 0;
  while (begin <= path.size()) {
    size_t end = path.find(':', begin);
    if (end == std::string::npos) end = path.size();
    const std::string dir = path.substr(begin, end - begin);
    // An empty PATH entry means "the current directory" to a shell; a worker must not run whatever
    // happens to lie in its own working directory, so empty entries are skipped.
    if (!dir.empty() && is_executable_file(dir + "/" + argv0)) {
      *program = dir + "/" + argv0;
      return Status::Ok();
    }
    begin = end + 1;
  }
  return Status::InvalidArgument("'argv[0]': program '" + argv0 + "' was not found in PATH (" + path + ")");
}

}  // namespace

Status parse_exec_request(std::string_view input, ExecRequest* out) {
  boost::json::object in;
  if (Status s = parse_object(input, "input", &in); !s.ok()) return s;
  if (Status s = only_members(in, "input", {"argv", "env", "cwd", "timeout_ms", "stdin"}); !s.ok()) return s;
  ExecRequest r;
  if (Status s = read_argv(in, &r.argv); !s.ok()) return s;
  std::string path;
  if (Status s = read_env(in, &r.env, &path); !s.ok()) return s;
  if (Status s = read_string(in, "cwd", &r.cwd); !s.ok()) return s;
  if (r.cwd && (r.cwd->empty() || has_nul(*r.cwd) || !is_directory(*r.cwd)))
    return Status::InvalidArgument("'cwd': '" + *r.cwd + "' is not an existing directory");
  std::optional<int64_t> timeout_ms;
  if (Status s = read_int(in, "timeout_ms", 1, kMaxTimeoutMs, &timeout_ms); !s.ok()) return s;
  if (timeout_ms) r.timeout = std::chrono::milliseconds(*timeout_ms);
  if (Status s = read_string(in, "stdin", &r.stdin_data); !s.ok()) return s;
  if (Status s = resolve_program(r.argv.front(), path, r.cwd, &r.program); !s.ok()) return s;
  *out = std::move(r);
  return Status::Ok();
}

Status parse_steering(const taskhost::Message& message, StdinCommand* out) {
  StdinCommand cmd;
  cmd.text = message.text;
  if (!message.data.empty()) {
    boost::json::object data;
    if (Status s = parse_object(message.data, "message data", &data); !s.ok()) return s;
    if (Status s = only_members(data, "message data", {"close_stdin"}); !s.ok()) return s;
    std::optional<bool> close;
    if (Status s = read_bool(data, "close_stdin", &close); !s.ok()) return s;
    cmd.close = close.value_or(false);
  }
  if (cmd.text.empty() && !cmd.close)
    return Status::InvalidArgument(R"(nothing to do: send text for stdin, or data {"close_stdin": true})");
  *out = std::move(cmd);
  return Status::Ok();
}

}  // namespace exec_plugin
