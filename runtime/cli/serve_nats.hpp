// `taskhost serve --transport nats`: the host fed by NATS JetStream (runtime/transport/nats) instead of
// the local API. Separate from serve.cpp so a build without libnats still has every other command.
#pragma once

#include "config/config.hpp"

#include <csignal>

namespace taskhost::cli {

// Runs until SIGTERM/SIGINT (blocked in `signals`, waited for here); returns the exit code.
int serve_nats(const config::Config& config, const sigset_t& signals);

}  // namespace taskhost::cli
