#include "host/host.hpp"

namespace taskhost {

Host::Host(HostOptions options, transport::TaskOutbox& outbox)
    : registry_(std::make_unique<registry::KindRegistry>()),
      router_(std::make_unique<tasks::Router>(std::move(options.router), *registry_, outbox)),
      plugins_(std::make_unique<registry::PluginDirectory>(options.plugins_dir, *registry_, router_->host_api())) {
  initial_scan_ = plugins_->scan();
}

Host::~Host() {
  router_->shutdown();  // no plugin call in flight, every task released
  plugins_.reset();
  registry_->clear();   // executors destroyed while the router's sink table is still valid
  router_.reset();
}

}  // namespace taskhost
