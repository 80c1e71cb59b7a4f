// exec.run: what a task asks for (its input, checked and resolved) and what a steering message asks for.
//
// Input: {"argv": ["cmd", "arg", ...], "env": {"K": "V"}, "cwd": "/dir", "timeout_ms": N, "stdin": "..."};
// only argv is required. The program gets a minimal environment (kBaseEnv) plus `env`, never the host's
// own: a task must not see the worker's credentials, and its behaviour must not depend on which worker
// ran it. argv[0] without a '/' is looked up in that environment's PATH, not the host's, for the same
// reason.
//
// Thread rule: pure functions; the structs are plain values.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <taskhost/sdk.hpp>
#include <vector>

namespace exec_plugin {

// The environment every program starts from; the input's "env" adds to it and may override it.
inline constexpr std::string_view kBaseEnv[] = {"PATH=/usr/local/bin:/usr/bin:/bin"};
// Bounds of "timeout_ms": at least 1 ms, at most a week.
inline constexpr int64_t kMaxTimeoutMs = 7LL * 24 * 3600 * 1000;

struct ExecRequest {
  std::vector<std::string> argv;   // argv[0] as the submitter wrote it (used in every message)
  std::string program;             // the file to execute: argv[0] resolved through PATH
  std::vector<std::string> env;    // "KEY=VALUE" entries: kBaseEnv with the input's additions
  std::optional<std::string> cwd;  // the program's working directory; the host's when absent
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<std::string> stdin_data;  // written to the program, then its stdin is closed
};

// Parses and checks a task input, resolving the program. InvalidArgument names the offending member
// ("argv[0]", "env.HOME", "cwd", ...).
taskhost::Status parse_exec_request(std::string_view input, ExecRequest* out);

// A steering message turned into stdin work: text is written as is (no newline added); data
// {"close_stdin": true} closes stdin after the text.
struct StdinCommand {
  std::string text;
  bool close = false;
};

taskhost::Status parse_steering(const taskhost::Message& message, StdinCommand* out);

}  // namespace exec_plugin
