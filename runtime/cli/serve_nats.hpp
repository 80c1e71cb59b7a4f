// `taskhost serve --transport nats`: the host fed by NATS JetStream (runtime/transport/nats) instead of
// the local API; and `taskhost plugins --nats URL`, which asks every live host over NATS instead of one
// host's API. Separate from serve.cpp/plugins.cpp so a build without libnats still has every other command.
#pragma once

#include "config/config.hpp"

#include <csignal>
#include <string>

namespace taskhost::cli {

// Runs until SIGTERM/SIGINT (blocked in `signals`, waited for here); returns the exit code.
int serve_nats(const config::Config& config, const sigset_t& signals);

// Prints each host answering discovery on the deployment at `url` (config.url when empty): worker id and
// kinds as a table, or with `json` one TaskCompletion JSON line per host. Returns the exit code; throws
// transport::ClientError when no server or no host answers.
int plugins_over_nats(const config::NatsConfig& config, const std::string& url, bool json);

}  // namespace taskhost::cli
