#include "cli/serve_nats.hpp"

#ifdef TASKHOST_WITH_NATS
#include "transport/nats/nats_serve.hpp"
#endif

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

}  // namespace taskhost::cli
