// What every `taskhost` subcommand shares: the subcommand table, argument parsing with Boost.Program_
// options (with --help on each), the client options (--api, --nats, --json), and exit codes.
//
// Errors are one line on stderr, "taskhost CMD: what was wrong", with a non-zero exit code.
#pragma once

#include "config/config.hpp"
#include "transport/client.hpp"

#include <boost/program_options.hpp>

#include <google/protobuf/message.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::api {
class HttpTaskClient;
}

namespace taskhost::cli {

namespace po = boost::program_options;

// Exit codes (documented in `taskhost --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;         // the command failed (unreachable API, unknown task, ...)
inline constexpr int kExitUsage = 2;         // bad arguments
inline constexpr int kExitTaskFailed = 3;    // submit --wait: the task ended failed
inline constexpr int kExitTaskCanceled = 4;  // submit --wait: the task ended canceled

// Bad arguments: printed as one line, exit kExitUsage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Subcommand {
  std::string_view name;
  std::string_view summary;
  int (*run)(const std::vector<std::string>& args);
};
const std::vector<Subcommand>& subcommands();

// One subcommand's command line. `usage` is the synopsis line ("submit KIND [options]").
class CommandLine {
 public:
  CommandLine(std::string_view name, std::string_view usage, std::string_view description);
  po::options_description& options() { return options_; }
  // Positional arguments, in order; `max` -1 for unlimited.
  void positional(const char* name, int max);
  // Adds --api, --nats (when built with NATS) and, if `reads`, --json.
  void client_options(bool reads);
  void json_option();
  // Parses; false when --help was printed (the command then returns kExitOk). Throws UsageError.
  bool parse(const std::vector<std::string>& args);
  const po::variables_map& vm() const { return vm_; }
  bool has(const char* name) const { return vm_.count(name) > 0; }
  template <typename T>
  T get(const char* name) const { return vm_[name].as<T>(); }
  bool json() const { return has("json"); }

 private:
  std::string name_, usage_, description_;
  po::options_description options_;
  po::positional_options_description positional_;
  po::variables_map vm_;
};

// The client for --api (default: $TASKHOST_API, else 127.0.0.1:7411) or --nats when given.
std::unique_ptr<transport::TaskClient> make_client(const CommandLine& cl);
#ifdef TASKHOST_WITH_NATS
// With --nats: the [nats] table of --config (or the defaults), with --nats-prefix applied.
config::NatsConfig nats_config(const CommandLine& cl);
#endif
// --timeout SECS (declared as a long long option without a default): 0 when absent (no limit). A
// negative value is a UsageError: program_options would read "-1" into an unsigned as its maximum.
std::chrono::seconds timeout_flag(const CommandLine& cl);
// The value of --nats-prefix, checked as [nats] stream_prefix is (UsageError naming the flag).
std::string nats_prefix_flag(const CommandLine& cl);
// The local API's own client, for the admin commands (plugins, reload). Throws UsageError with --nats.
std::unique_ptr<api::HttpTaskClient> make_http_client(const CommandLine& cl);

// Prints `message` as one line of JSON on stdout.
void print_json(const google::protobuf::Message& message);

// Reads --input/--data style values: JSON text, or @FILE (the file's contents), or @- (stdin). Returns
// the JSON text after checking it parses; throws UsageError naming `option` otherwise.
std::string json_argument(const std::string& value, std::string_view option);

}  // namespace taskhost::cli
