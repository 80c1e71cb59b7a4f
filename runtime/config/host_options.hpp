// taskhost.toml → the Host's options: one place, so `serve` over either transport (cli/serve.cpp,
// transport/nats/nats_serve.cpp) runs the same router limits and the same hot reload.
#pragma once

#include "config/config.hpp"
#include "host/host.hpp"

namespace taskhost::config {

// Router limits and deadlines, the plugins directory, its watcher ([plugins] watch, settle_ms,
// rescan_interval_ms), drain deadline and migrate_on_reload. The worker id is effective_worker_id().
HostOptions host_options(const Config& config);

}  // namespace taskhost::config
