#include "cli/serve_nats.hpp"

#include "cli/common.hpp"
#include "cli/format.hpp"
#include "transport/client.hpp"

#ifdef TASKHOST_WITH_NATS
#include "transport/nats/nats_serve.hpp"
#endif

#include <iostream>
#include <stdexcept>

namespace taskhost::cli {

int serve_nats(const config::Config& config, const sigset_t& signals) {
#ifdef TASKHOST_WITH_NATS
  return transport::nats::serve_nats_host(config, signals);
#else
  (void)config;
  (void)signals;
  throw std::runtime_error(
      "--transport nats: this taskhost was built without the NATS transport (libnats was not found at build time)");
#endif
}

int plugins_over_nats(const config::NatsConfig& config, const std::string& url, bool json) {
#ifdef TASKHOST_WITH_NATS
  // Hosts answer within a few ms on a LAN; half a second also covers a busy host or a slow link.
  const auto hosts = transport::nats::discover_hosts(config, url, std::chrono::milliseconds(500));
  if (hosts.empty()) {
    throw transport::ClientError("no host answered on " + config.stream_prefix +
                                 ".discover (is a host running with the same stream_prefix?)");
  }
  if (json) {
    for (const auto& h : hosts) print_json(h);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"WORKER", "KINDS"}};
  for (const auto& h : hosts) {
    std::string kinds;
    for (const auto& k : h.components().components()) kinds += (kinds.empty() ? "" : ",") + k.component_id();
    rows.push_back({h.worker_id(), kinds.empty() ? "-" : kinds});
  }
  print_table(std::cout, rows);
  return kExitOk;
#else
  (void)config;
  (void)url;
  (void)json;
  throw std::runtime_error("--nats: this taskhost was built without the NATS transport");
#endif
}

}  // namespace taskhost::cli
