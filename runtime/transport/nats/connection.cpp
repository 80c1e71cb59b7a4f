#include "transport/nats/connection.hpp"

#include <utility>

#include "common/log.hpp"
#include "transport/nats/nkey.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <strings.h>

namespace taskhost::transport::nats {

std::string describe(natsStatus status, std::string_view what, int js_code) {
  std::string text = std::string(what) + ": " + natsStatus_GetText(status);
  if (js_code != 0) text += " (JetStream error " + std::to_string(js_code) + ")";
  if (js_code == kJsNotEnabled) text += "; JetStream is not enabled on the server (start nats-server with -js)";
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail != nullptr && *detail != '\0' && last == status) text += " [" + std::string(detail) + "]";
  return text;
}

void check(natsStatus status, std::string_view what, int js_code) {
  if (status != NATS_OK) throw NatsError(describe(status, what, js_code), status, js_code);
}

void close_subscription(natsSubscription* sub) {
  if (sub == nullptr) return;
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
}

namespace {

// Empties `slot` under `mu` and returns what it held.
natsSubscription* take(std::mutex& mu, natsSubscription*& slot) {
  std::lock_guard lock(mu);
  return std::exchange(slot, nullptr);
}

}  // namespace

void close_subscription(std::mutex& mu, natsSubscription*& slot) { close_subscription(take(mu, slot)); }

void drain_subscription(natsSubscription* sub) {
  if (sub == nullptr) return;
  if (natsSubscription_Drain(sub) == NATS_OK) {
    natsSubscription_WaitForDrainCompletion(sub, 5'000);
  } else {
    natsSubscription_Unsubscribe(sub);
  }
  natsSubscription_Destroy(sub);
}

void drain_subscription(std::mutex& mu, natsSubscription*& slot) { drain_subscription(take(mu, slot)); }

namespace {

std::vector<std::string> split_urls(const std::string& urls) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= urls.size()) {
    size_t end = urls.find(',', start);
    if (end == std::string::npos) end = urls.size();
    std::string u = urls.substr(start, end - start);
    while (!u.empty() && u.front() == ' ') u.erase(u.begin());
    while (!u.empty() && u.back() == ' ') u.pop_back();
    if (!u.empty()) out.push_back(u);
    start = end + 1;
  }
  return out;
}

// Errors no retry can fix: the server refused the credentials, or TLS cannot be agreed (a wrong CA, a
// server that wants TLS when none is configured, or the reverse). Waiting out connect_timeout would only
// hide them.
bool fatal_at_connect(natsStatus s) {
  return s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED || s == NATS_SSL_ERROR ||
         s == NATS_SECURE_CONNECTION_REQUIRED || s == NATS_SECURE_CONNECTION_WANTED;
}

std::string hint_for(natsStatus s, const NatsOptions& o, const std::string& nkey_public) {
  if (s == NATS_CONNECTION_AUTH_FAILED || s == NATS_NOT_PERMITTED) {
    if (!o.credentials.empty()) return "; check the credentials file " + o.credentials;
    if (!o.nkey_seed_file.empty()) {
      return "; check the nkey_seed_file " + o.nkey_seed_file + ": the server must list its public key " + nkey_public;
    }
    if (!o.user.empty()) return "; check user '" + o.user + "' and its password_file";
    if (!o.token.empty()) return "; check the token_file";
    return "; check the user/password or token in the URL";
  }
  if (s == NATS_SSL_ERROR) {
    return o.tls_ca.empty() ? "; the server's certificate is not trusted: set tls_ca to its CA"
                            : "; the server's certificate does not verify against tls_ca " + o.tls_ca;
  }
  if (s == NATS_SECURE_CONNECTION_REQUIRED) return "; the server requires TLS: use a tls:// URL or set tls_ca";
  if (s == NATS_SECURE_CONNECTION_WANTED) return "; TLS is configured but the server does not offer it";
  return "";
}

}  // namespace

std::string redact_url(const std::string& urls) {
  // "scheme://user:password@host" -> "scheme://user:***@host"; "scheme://token@host" -> "scheme://***@host".
  std::string out;
  for (const auto& u : split_urls(urls)) {
    std::string r = u;
    const size_t scheme = r.find("://");
    const size_t start = scheme == std::string::npos ? 0 : scheme + 3;
    const size_t at = r.find('@', start);
    if (at != std::string::npos) {
      const size_t colon = r.find(':', start);
      if (colon != std::string::npos && colon < at) {
        r.replace(colon + 1, at - colon - 1, "***");
      } else {
        r.replace(start, at - start, "***");
      }
    }
    out += (out.empty() ? "" : ",") + r;
  }
  return out;
}

Connection::Connection(const NatsOptions& o, const std::string& name) {
  // Key files first, before any cnats object exists: cnats would report a missing or unusable one only
  // as a failed connect and retry it until connect_timeout. The public key is no secret.
  std::string nkey_public;
  try {
    if (!o.credentials.empty()) nkey::check_credentials_file(o.credentials);
    if (!o.nkey_seed_file.empty()) nkey_public = nkey::user_public_key_from_seed_file(o.nkey_seed_file);
  } catch (const std::runtime_error& e) {
    throw NatsError(e.what(), NATS_INVALID_ARG, 0);
  }
  check(natsOptions_Create(&opts_), "nats options");
  const auto urls = split_urls(o.url);
  if (urls.empty()) throw NatsError("nats: no server URL configured", NATS_INVALID_ARG, 0);
  std::vector<const char*> servers;
  for (const auto& u : urls) servers.push_back(u.c_str());
  check(natsOptions_SetServers(opts_, servers.data(), static_cast<int>(servers.size())), "nats servers " + redact_url(o.url));
  check(natsOptions_SetName(opts_, name.c_str()), "nats name");
  // Reconnect forever, quickly, and buffer what is published meanwhile: a server restart must not
  // lose a completion or an ack. Pings find a silently dead server within a few seconds.
  check(natsOptions_SetMaxReconnect(opts_, -1), "nats max reconnect");
  check(natsOptions_SetReconnectWait(opts_, 250), "nats reconnect wait");
  check(natsOptions_SetReconnectJitter(opts_, 100, 500), "nats reconnect jitter");
  check(natsOptions_SetReconnectBufSize(opts_, 64 * 1024 * 1024), "nats reconnect buffer");
  check(natsOptions_SetPingInterval(opts_, 2'000), "nats ping interval");
  check(natsOptions_SetMaxPingsOut(opts_, 3), "nats max pings out");
  check(natsOptions_SetMaxPendingMsgs(opts_, 1'000'000), "nats max pending");
  if (!o.credentials.empty()) {
    check(natsOptions_SetUserCredentialsFromFiles(opts_, o.credentials.c_str(), nullptr),
          "nats credentials " + o.credentials);
  }
  if (!nkey_public.empty()) {
    check(natsOptions_SetNKeyFromSeed(opts_, nkey_public.c_str(), o.nkey_seed_file.c_str()),
          "nats nkey_seed_file " + o.nkey_seed_file);
  }
  if (!o.user.empty()) check(natsOptions_SetUserInfo(opts_, o.user.c_str(), o.password.c_str()), "nats user " + o.user);
  if (!o.token.empty()) check(natsOptions_SetToken(opts_, o.token.c_str()), "nats token");
  // A tls:// URL means TLS or nothing: cnats takes the scheme only as a hint, and against a server that
  // offers no TLS it connected in plain text. Secure, it refuses such a server (and trusts the system's
  // CAs unless tls_ca names one).
  const bool tls_url = std::any_of(urls.begin(), urls.end(), [](const std::string& u) {
    return u.size() > 6 && strncasecmp(u.c_str(), "tls://", 6) == 0;
  });
  if (tls_url || !o.tls_ca.empty() || !o.tls_cert.empty()) {
    check(natsOptions_SetSecure(opts_, true), "nats TLS");
    if (!o.tls_ca.empty()) check(natsOptions_LoadCATrustedCertificates(opts_, o.tls_ca.c_str()), "nats TLS CA " + o.tls_ca);
    if (!o.tls_cert.empty()) {
      check(natsOptions_LoadCertificatesChain(opts_, o.tls_cert.c_str(), o.tls_key.c_str()),
            "nats TLS certificate " + o.tls_cert);
    }
  }
  check(natsOptions_SetReconnectedCB(opts_, &Connection::reconnected_cb, this), "nats reconnected callback");
  check(natsOptions_SetDisconnectedCB(opts_, &Connection::disconnected_cb, this), "nats disconnected callback");
  check(natsOptions_SetErrorHandler(opts_, &Connection::error_cb, this), "nats error handler");
  check(natsOptions_SetClosedCB(opts_, &Connection::closed_cb, this), "nats closed callback");
  connection_lost_ = o.connection_lost;

  // cnats 3.4 sends no signature when the signed nonce starts with a 0 byte (fixed upstream: nats.c#705),
  // so one connect in 256 with credentials or an nkey is refused although the key is right. Another
  // connect signs another nonce; a real refusal costs two more round trips, not connect_timeout.
  const bool signs_nonce = !o.credentials.empty() || !nkey_public.empty();
  int refusals = 0;
  const auto deadline = std::chrono::steady_clock::now() + o.connect_timeout;
  for (;;) {
    natsStatus s = natsConnection_Connect(&nc_, opts_);
    if (s == NATS_OK) break;
    if (signs_nonce && s == NATS_CONNECTION_AUTH_FAILED && ++refusals < 3) continue;
    if (o.stop_requested && o.stop_requested()) {
      natsOptions_Destroy(opts_);
      throw NatsError(describe(s, "connect to " + redact_url(o.url)) + "; stopped by a signal while waiting for it", s, 0);
    }
    if (fatal_at_connect(s) || std::chrono::steady_clock::now() >= deadline) {
      natsOptions_Destroy(opts_);
      throw NatsError(describe(s, "connect to " + redact_url(o.url)) + hint_for(s, o, nkey_public), s, 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  {
    std::lock_guard lock(closed_mu_);
    closed_cb_ran_ = false;  // the connection that counts is this one
  }
  up_.store(true);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5'000;
  natsStatus s = natsConnection_JetStream(&js_, nc_, &jo);
  if (s != NATS_OK) {
    close_and_wait();
    natsConnection_Destroy(nc_);
    natsOptions_Destroy(opts_);
    check(s, "JetStream context");
  }
}

Connection::~Connection() {
  jsCtx_Destroy(js_);
  close_and_wait();
  natsConnection_Destroy(nc_);
  natsOptions_Destroy(opts_);
}

void Connection::close() {
  closing_.store(true);
  natsConnection_Close(nc_);
}

void Connection::close_and_wait() {
  closing_.store(true);
  natsConnection_Close(nc_);
  // cnats runs the closed callback on its own thread, after the close: `this` must outlive it. (Closed
  // before, by the server or close(), it ran then.) Bounded, should cnats ever skip it.
  std::unique_lock lock(closed_mu_);
  closed_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_cb_ran_; });
}

bool Connection::connected() const { return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED; }

std::chrono::steady_clock::duration Connection::down_for() const {
  if (closed_by_server_.load()) return std::chrono::steady_clock::duration::max();
  if (connected()) return {};
  const int64_t lost = lost_at_.load(std::memory_order_relaxed);
  if (lost == 0) return {};
  return std::chrono::steady_clock::now() - std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(lost));
}

size_t Connection::known_servers() const {
  char** servers = nullptr;
  int count = 0;
  if (natsConnection_GetServers(nc_, &servers, &count) != NATS_OK) return 1;
  for (int i = 0; i < count; ++i) free(servers[i]);
  free(servers);
  return count > 0 ? static_cast<size_t>(count) : 1;
}

void Connection::on_reconnected(std::function<void()> listener) {
  std::lock_guard lock(mu_);
  reconnected_.push_back(std::move(listener));
}

void Connection::on_disconnected(std::function<void()> listener) {
  std::lock_guard lock(mu_);
  disconnected_.push_back(std::move(listener));
}

void Connection::reconnected_cb(natsConnection*, void* closure) {
  auto* self = static_cast<Connection*>(closure);
  std::vector<std::function<void()>> listeners;
  {
    std::lock_guard lock(self->mu_);
    listeners = self->reconnected_;
  }
  log::info("nats: reconnected");
  for (auto& l : listeners) l();
}

void Connection::disconnected_cb(natsConnection* nc, void* closure) {
  if (natsConnection_IsClosed(nc)) return;  // our own close, not a lost server
  auto* self = static_cast<Connection*>(closure);
  self->lost_at_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  std::vector<std::function<void()>> listeners;
  {
    std::lock_guard lock(self->mu_);
    listeners = self->disconnected_;
  }
  log::warn("nats: disconnected; reconnecting");
  for (auto& l : listeners) l();
}

void Connection::closed_cb(natsConnection* nc, void* closure) {
  auto* self = static_cast<Connection*>(closure);
  if (!self->closing_.load() && self->up_.load()) {  // not our own close, nor a connect being retried
    // With reconnects unlimited, cnats closes a connection by itself only over an error it does not
    // retry: the server's -ERR for a protocol violation, after which the server has dropped it.
    const char* text = nullptr;
    const natsStatus s = natsConnection_GetLastError(nc, &text);
    const std::string why = text != nullptr && *text != '\0' ? text : natsStatus_GetText(s);
    self->closed_by_server_.store(true);
    log::error("nats: the server closed the connection for good: {}", why);
    if (self->connection_lost_) self->connection_lost_(why);
  }
  // The last touch of `self`: close_and_wait() may destroy it as soon as this lock is released.
  std::lock_guard lock(self->closed_mu_);
  self->closed_cb_ran_ = true;
  self->closed_cv_.notify_all();
}

void Connection::error_cb(natsConnection*, natsSubscription*, natsStatus err, void*) {
  log::warn("nats: asynchronous error: {}", natsStatus_GetText(err));
}

}  // namespace taskhost::transport::nats
