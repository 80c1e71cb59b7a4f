// Test harness for suites that drive the real `taskhost` binary (build/bin/taskhost) over the real local
// API: a host process on 127.0.0.1 with a free port (port 0; the host writes the real address to
// STATE/api.addr), CLI runs with captured stdout/stderr and exit code, and JSON parsing of --json output.
//
// Nothing outlives a test: children die with the test process (PR_SET_PDEATHSIG), every CLI run has a
// timeout after which it is killed, and a Host that is still running at scope exit is SIGKILLed.
// Thread rule: objects belong to the test's thread.
#pragma once

#include <boost/json/value.hpp>

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace taskhost::clitest {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

fs::path taskhost_bin();
fs::path built_plugin(const std::string& file);   // TASKHOST_PLUGIN_DIR/file
fs::path fixture_plugin(const std::string& file);  // TASKHOST_FIXTURE_DIR/file

// A fresh plugins directory under `parent` holding copies of `files` (from the built plugins or fixtures).
fs::path make_plugins_dir(const fs::path& parent, const std::vector<fs::path>& files);

struct Result {
  int code = -1;  // exit code; -1 when killed (timeout or signal)
  std::string out;
  std::string err;
  bool timed_out = false;
};
std::ostream& operator<<(std::ostream& os, const Result& r);

// Runs `taskhost ARGS...` to completion (killed after `timeout`). `env` entries (KEY=VALUE) are added.
Result run(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
           std::chrono::milliseconds timeout = 30s);

// Runs any program (argv[0] its path) as run() runs taskhost.
Result run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 30s);

// Runs `taskhost ARGS...` with a pseudo-terminal as stdin/stdout/stderr (as a person at a terminal would);
// `out` holds everything written to the terminal.
Result run_in_terminal(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s);

// A `taskhost ARGS...` run in the background; finish() collects it.
class Background {
 public:
  Background(const std::vector<std::string>& args, const std::vector<std::string>& env = {});
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  Result finish(std::chrono::milliseconds timeout = 30s);

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
};

class Host {
 public:
  // Starts `taskhost serve --plugins PLUGINS --state STATE --api API EXTRA...` and waits until it wrote
  // its address (10 s), failing the test otherwise. `env` entries (KEY=VALUE) are added to its environment.
  Host(fs::path plugins_dir, fs::path state_dir, std::vector<std::string> extra = {},
       std::string api = "127.0.0.1:0", std::vector<std::string> env = {});
  ~Host();  // SIGKILL if still running
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const std::string& api() const { return api_; }
  pid_t pid() const { return pid_; }
  // `taskhost ARGS... --api ADDR`.
  Result cli(std::vector<std::string> args, std::chrono::milliseconds timeout = 30s) const;
  void signal(int sig);
  // Waits for the process to exit; its wait status, or nullopt if still running after `timeout`.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string log() const;  // everything it wrote to stdout and stderr

 private:
  fs::path plugins_dir_;
  fs::path state_dir_;
  fs::path log_;
  pid_t pid_ = -1;
  std::string api_;
};

// Parses JSON text; fails the test (naming the text) when it does not parse.
boost::json::value parse_json(const std::string& text);
// Lines of `text` (without empty ones).
std::vector<std::string> lines(const std::string& text);
// `status ID --json` until `pred` holds for it (or `timeout`); returns the last status (empty if none).
boost::json::object wait_for_status(const Host& host, const std::string& id,
                                    const std::function<bool(const boost::json::object&)>& pred,
                                    std::chrono::milliseconds timeout = 15s);
// `taskhost submit ARGS... --json` on `host`, failing the test unless it succeeded; the new task's id.
std::string submit(const Host& host, const std::vector<std::string>& args);
// The entry for the plugin file named `file_name` in `taskhost plugins --json` output, or null.
const boost::json::object* find_plugin(const boost::json::object& root, const std::string& file_name);
// `taskhost plugins --json` on `host`, and the entry for `file_name` in it (a copy), failing the test when
// the command fails or has no such entry.
boost::json::object plugin_entry(const Host& host, const std::string& file_name);
// Convenience accessors on parsed JSON: a member as string ("" if absent), as nested object.
std::string str(const boost::json::object& o, const char* key);
const boost::json::object& obj(const boost::json::object& o, const char* key);

}  // namespace taskhost::clitest
