#include "transport/nats/nats_options.hpp"

#include "transport/nats/nkey.hpp"

#include <fmt/format.h>

#include <fstream>
#include <stdexcept>

namespace taskhost::transport::nats {
namespace {

// The first line of a secret file, without its line end. The error names the file, never its content.
std::string read_secret(const std::string& path, const char* key) {
  std::ifstream in(path);
  std::string line;
  if (!in) throw std::runtime_error(fmt::format("[nats] {}: cannot read '{}'", key, path));
  if (!std::getline(in, line)) throw std::runtime_error(fmt::format("[nats] {}: '{}' is empty", key, path));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) throw std::runtime_error(fmt::format("[nats] {}: '{}' is empty", key, path));
  return line;
}

}  // namespace

NatsOptions nats_options(const config::NatsConfig& c, std::string worker_id) {
  NatsOptions o;
  o.url = c.url;
  o.credentials = c.credentials;
  // cnats reads the key files itself at each connect; one it could not use is reported here, before any.
  if (!o.credentials.empty()) nkey::check_credentials_file(o.credentials);
  o.user = c.user;
  if (!c.password_file.empty()) o.password = read_secret(c.password_file, "password_file");
  if (!c.token_file.empty()) o.token = read_secret(c.token_file, "token_file");
  o.nkey_seed_file = c.nkey_seed_file;
  if (!o.nkey_seed_file.empty()) (void)nkey::user_public_key_from_seed_file(o.nkey_seed_file);
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
