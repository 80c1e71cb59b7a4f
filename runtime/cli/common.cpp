#include "cli/common.hpp"

#include "api/http_client.hpp"
#include "api/json.hpp"
#include "common/path_problem.hpp"
#include "config/config.hpp"
#include "config/endpoint.hpp"

#ifdef TASKHOST_WITH_NATS
#include "transport/nats/nats_serve.hpp"
#endif

#include <boost/json/parse.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <iostream>
#include <iterator>
#include <sstream>

namespace taskhost::cli {

CommandLine::CommandLine(std::string_view name, std::string_view usage, std::string_view description)
    : name_(name), usage_(usage), description_(description), options_("Options") {
  options_.add_options()("help,h", "show this help");
}

void CommandLine::positional(const char* name, int max) { positional_.add(name, max); }

void CommandLine::json_option() { options_.add_options()("json", "print JSON (one object per line) instead of text"); }

void CommandLine::client_options(bool reads) {
  options_.add_options()("api", po::value<std::string>()->value_name("ADDR"),
                         "the host's local API: HOST:PORT or unix:PATH (default: $TASKHOST_API, else the --config "
                         "file's [api] address, else 127.0.0.1:7411)");
#ifdef TASKHOST_WITH_NATS
  options_.add_options()("config", po::value<std::string>()->value_name("FILE"),
                         "the host's taskhost.toml: its [api] address, or with --nats its [nats] table "
                         "(credentials, TLS, stream_prefix, ...)");
  options_.add_options()("nats", po::value<std::string>()->value_name("URL"),
                         "talk to a NATS JetStream deployment instead of a local host")(
      "nats-prefix", po::value<std::string>()->value_name("PREFIX"),
      "with --nats: the deployment's stream_prefix (overrides --config)");
#else
  // A host built without NATS still has a config file with an [api] address.
  options_.add_options()("config", po::value<std::string>()->value_name("FILE"),
                         "the host's taskhost.toml: its [api] address");
#endif
  if (reads) json_option();
}

bool CommandLine::parse(const std::vector<std::string>& args) {
  try {
    po::store(po::command_line_parser(args).options(options_).positional(positional_).run(), vm_);
  } catch (const po::too_many_positional_options_error&) {
    throw UsageError("too many arguments");
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  if (vm_.count("help")) {
    std::cout << "Usage: taskhost " << usage_ << "\n\n" << description_ << "\n\n" << options_;
    return false;
  }
  try {
    po::notify(vm_);
  } catch (const po::required_option& e) {
    // program_options names a missing positional argument as an option ("the option '--kind' is
    // required"), which no user could pass as such.
    std::string name = e.get_option_name();
    name.erase(0, name.find_first_not_of('-'));
    for (unsigned i = 0; i < positional_.max_total_count() && i < 16; ++i) {
      if (positional_.name_for_position(i) == name) throw UsageError("missing argument '" + name + "'");
    }
    throw UsageError(e.what());
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  // An empty --nats would quietly mean the default server.
  if (vm_.count("nats") && vm_["nats"].as<std::string>().find_first_not_of(' ') == std::string::npos) {
    throw UsageError("--nats needs a server URL (nats://HOST:PORT)");
  }
  return true;
}

namespace {

config::Endpoint api_endpoint(const CommandLine& cl) {
  std::string address(config::kDefaultApiAddress);
  // The host's config, when given, is read (a bad one is an error naming it, not ignored) and says where
  // its API listens; --api and $TASKHOST_API still come first.
  const std::optional<config::Config> conf =
      cl.has("config") ? std::optional(config::load_config(cl.get<std::string>("config"))) : std::nullopt;
  if (cl.has("api")) {
    address = cl.get<std::string>("api");
  } else if (const char* env = std::getenv("TASKHOST_API"); env && *env) {
    address = env;
  } else if (conf) {
    address = conf->api_address;
    // Port 0 lets the host pick one; it writes where it listens to STATE/api.addr.
    if (auto e = config::parse_endpoint(address, nullptr); e && !e->is_unix && e->port == 0) {
      std::ifstream in(conf->state_dir / "api.addr");
      if (std::string written; in && std::getline(in, written) && !written.empty()) address = written;
    }
  }
  std::string why;
  auto e = config::parse_endpoint(address, &why);
  if (!e) throw UsageError(fmt::format("--api '{}': {}", address, why));
  return *e;
}

}  // namespace

#ifdef TASKHOST_WITH_NATS
config::NatsConfig nats_config(const CommandLine& cl) {
  config::NatsConfig nats =
      cl.has("config") ? config::load_config(cl.get<std::string>("config")).nats : config::NatsConfig{};
  if (cl.has("nats-prefix")) nats.stream_prefix = nats_prefix_flag(cl);
  return nats;
}
#endif

std::chrono::seconds timeout_flag(const CommandLine& cl) {
  if (!cl.has("timeout")) return std::chrono::seconds(0);
  const long long secs = cl.get<long long>("timeout");
  if (secs < 0) throw UsageError("--timeout must be 0 (no limit) or a number of seconds, not " + std::to_string(secs));
  // Past this, "now + timeout" overflows the clock: such a watch ended at once, and looked successful.
  constexpr long long kTenYears = 10LL * 365 * 24 * 3600;
  if (secs > kTenYears) {
    throw UsageError("--timeout must be at most " + std::to_string(kTenYears) + " seconds (ten years; 0 is no limit), not " +
                     std::to_string(secs));
  }
  return std::chrono::seconds(secs);
}

std::string nats_prefix_flag(const CommandLine& cl) {
  std::string prefix = cl.get<std::string>("nats-prefix");
  if (const std::string why = config::stream_prefix_problem(prefix); !why.empty()) throw UsageError("--nats-prefix " + why);
  return prefix;
}

std::unique_ptr<transport::TaskClient> make_client(const CommandLine& cl) {
#ifdef TASKHOST_WITH_NATS
  if (cl.has("nats")) {
    if (cl.has("api")) throw UsageError("--api and --nats are alternatives: give one");
    return transport::nats::make_nats_client(nats_config(cl), cl.get<std::string>("nats"));
  }
#endif
  return std::make_unique<api::HttpTaskClient>(api_endpoint(cl));
}

std::unique_ptr<api::HttpTaskClient> make_http_client(const CommandLine& cl) {
  if (cl.has("nats")) throw UsageError("--nats: this command needs a host's local API (--api)");
  return std::make_unique<api::HttpTaskClient>(api_endpoint(cl));
}

void print_json(const google::protobuf::Message& message) { std::cout << api::to_json(message) << "\n"; }

std::string json_argument(const std::string& value, std::string_view option) {
  std::string text = value;
  if (!value.empty() && value[0] == '@') {
    const std::string file = value.substr(1);
    if (file == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      if (const std::string why = path_problem(file, PathWant::data_file); !why.empty()) {
        throw UsageError(fmt::format("{}: file '{}' {}", option, file, why));
      }
      std::ifstream in(file, std::ios::binary);
      if (!in) throw UsageError(fmt::format("{}: cannot read file '{}'", option, file));
      std::ostringstream buf;
      buf << in.rdbuf();
      text = buf.str();
    }
  }
  boost::json::error_code ec;
  boost::json::parse(text, ec);
  if (ec) {
    const std::string source = value.size() > 1 && value[0] == '@' && value != "@-" ? " (file '" + value.substr(1) + "')" : "";
    throw UsageError(fmt::format("{}{} is not valid JSON: {}", option, source, ec.message()));
  }
  return text;
}

}  // namespace taskhost::cli
