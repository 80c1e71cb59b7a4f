// The entry points the CLI needs for NATS, so runtime/cli stays free of transport details:
//   serve_nats_host  `taskhost serve --transport nats`: a Host fed by NatsTransport until SIGTERM/SIGINT
//                    (drain within drain_grace, then exit 0); SIGHUP rescans the plugins directory.
//   make_nats_client the TaskClient behind `submit|send|cancel|status|watch --nats URL`.
//   discover_hosts   what `plugins --nats URL` shows: each live host and its kinds.
//
// Thread rule: call serve_nats_host from the main thread with `signals` blocked in every thread.
#pragma once

#include "config/config.hpp"
#include "transport/client.hpp"

#include "taskhost/v1/completion.pb.h"

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

namespace taskhost::transport::nats {

// Returns the process exit code; throws (NatsError, std::runtime_error) when it cannot start.
int serve_nats_host(const config::Config& config, const sigset_t& signals);

// `url` overrides config.url when not empty. Throws ClientError when no server answers.
std::unique_ptr<transport::TaskClient> make_nats_client(const config::NatsConfig& config, const std::string& url);

// `taskhost plugins --nats URL`: every live host's discovery answer (worker id, kinds), sorted by worker
// id, collected for `wait`. Throws ClientError when no server answers; an empty list means no host did.
std::vector<v1::TaskCompletion> discover_hosts(const config::NatsConfig& config, const std::string& url,
                                               std::chrono::milliseconds wait);

}  // namespace taskhost::transport::nats
