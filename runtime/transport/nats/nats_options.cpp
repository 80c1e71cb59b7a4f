#include "transport/nats/nats_options.hpp"

namespace taskhost::transport::nats {

NatsOptions nats_options(const config::NatsConfig& c, std::string worker_id) {
  NatsOptions o;
  o.url = c.url;
  o.credentials = c.credentials;
  o.tls_ca = c.tls_ca;
  o.tls_cert = c.tls_cert;
  o.tls_key = c.tls_key;
  o.ack_mode = c.ack_mode == config::NatsConfig::AckMode::on_completion ? AckMode::on_completion : AckMode::on_receipt;
  o.stream_prefix = c.stream_prefix;
  o.max_deliver = c.max_deliver;
  o.ack_wait = std::chrono::seconds(c.ack_wait_secs);
  o.kv_bucket = c.kv_bucket;
  o.host_dead_after = std::chrono::seconds(c.host_dead_after_secs);
  o.worker_id = std::move(worker_id);
  return o;
}

}  // namespace taskhost::transport::nats
