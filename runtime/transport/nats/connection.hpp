// One NATS connection as the transport uses it: servers, credentials and TLS from NatsOptions; reconnect
// forever (a restarted server or a moved cluster member is picked up again, publishes made meanwhile are
// buffered); and a JetStream context for synchronous API calls.
//
// Errors: NatsError carries the cnats status and, for JetStream API errors, the server's error code.
//
// Thread rule: the object is safe from any thread (cnats connections are). The event listeners run on a
// cnats thread and must not block. Not copyable, not movable (cnats holds its address).
#pragma once

#include "transport/nats/nats_options.hpp"

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace taskhost::transport::nats {

inline constexpr int kJsWrongLastSequence = 10071;  // a compare-and-set publish lost
inline constexpr int kJsNoMessageFound = 10037;
inline constexpr int kJsStreamNotFound = 10059;
inline constexpr int kJsConsumerNotFound = 10014;
inline constexpr int kJsStreamNameInUse = 10058;
inline constexpr int kJsNotEnabled = 10076;  // "JetStream not enabled" (also for the account)

class NatsError : public std::runtime_error {
 public:
  NatsError(const std::string& what, natsStatus status, int js_code)
      : std::runtime_error(what), status_(status), js_code_(js_code) {}
  natsStatus status() const { return status_; }
  int js_code() const { return js_code_; }

 private:
  natsStatus status_;
  int js_code_;
};

// "<what>: <status text> (<detail>)"; the detail is cnats' last error on this thread, if any.
std::string describe(natsStatus status, std::string_view what, int js_code = 0);
// Throws NatsError unless `status` is NATS_OK.
void check(natsStatus status, std::string_view what, int js_code = 0);
// How long a caller waits out a stream that has no leader (a cluster node restarting: the election has
// been seen to take 5 s and more). Hosts keep it short: a delivery a host holds unanswered meanwhile is
// sent again every ack_wait and counts toward max_deliver. The CLI's client waits a whole election rather
// than fail the operator's command.
inline constexpr std::chrono::seconds kHostElectionWait{5};
inline constexpr std::chrono::seconds kClientElectionWait{15};

inline std::chrono::steady_clock::time_point deadline_in(std::chrono::steady_clock::duration d) {
  return std::chrono::steady_clock::now() + d;
}

// Runs `call` (a JetStream request returning a natsStatus) again every 100 ms while it answers
// NATS_NO_RESPONDERS, until `until`. "No responders" means no stream took the request (a stream being
// created or electing a leader), so sending it again cannot store anything twice. A timeout is not
// retried here: the request may have been carried out, and only the caller knows how to check.
template <typename Call>
natsStatus retry_no_responders(Call&& call, std::chrono::steady_clock::time_point until = deadline_in(kHostElectionWait)) {
  for (;;) {
    const natsStatus s = call();
    if (s != NATS_NO_RESPONDERS || std::chrono::steady_clock::now() >= until) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// For reads only (a get of a stream's message: asking again changes nothing): also asks again after a
// timeout, which is what a read meets while the stream's leader is being elected, until `until`.
template <typename Call>
natsStatus retry_read(Call&& call, std::chrono::steady_clock::time_point until = deadline_in(kClientElectionWait)) {
  for (;;) {
    const natsStatus s = retry_no_responders(call, until);
    if (s != NATS_TIMEOUT || std::chrono::steady_clock::now() >= until) return s;
  }
}

// One read of the last message on `subject` in `stream`, for retry_read: JetStream's "system temporarily
// unavailable" (JSClusterNotAvailErr: the cluster has no meta leader for a moment, as while a node
// restarts) is asked again like a read that timed out, so it answers NATS_TIMEOUT for it, after a short
// pause (that answer comes at once). Other answers pass through, with their code in *code.
inline natsStatus get_last_msg(natsMsg** msg, jsCtx* js, const std::string& stream, const std::string& subject,
                               jsErrCode* code) {
  *code = static_cast<jsErrCode>(0);
  const natsStatus s = js_GetLastMsg(msg, js, stream.c_str(), subject.c_str(), nullptr, code);
  if (s == NATS_OK || *code != JSClusterNotAvailErr) return s;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return NATS_TIMEOUT;
}

// Calls fn(msg, seq) for every message stored under `subject` (wildcards allowed) in `stream` with a
// sequence in [from, before), in stream order, by direct gets ("the next message on this subject from
// sequence n"; the stream must allow direct gets); fn takes ownership of msg. Needs no subscription.
// Stops at the end of the range or at the first get that fails (a reply without a sequence is passed
// to fn as seq 0 and ends the walk).
template <typename Fn>
void for_each_stored(jsCtx* js, const std::string& stream, const std::string& subject, Fn&& fn, uint64_t from = 1,
                     uint64_t before = UINT64_MAX) {
  for (uint64_t next = from; next < before;) {
    jsDirectGetMsgOptions d;
    jsDirectGetMsgOptions_Init(&d);
    d.Sequence = next;
    d.NextBySubject = subject.c_str();
    natsMsg* msg = nullptr;
    if (js_DirectGetMsg(&msg, js, stream.c_str(), nullptr, &d) != NATS_OK) return;
    const uint64_t seq = natsMsg_GetSequence(msg);
    if (seq >= before) {
      natsMsg_Destroy(msg);
      return;
    }
    fn(msg, seq);
    if (seq == 0) return;
    next = seq + 1;
  }
}

// The server list with passwords and tokens in URLs replaced by "***", for messages and logs.
std::string redact_url(const std::string& urls);

// Unsubscribes and frees `sub`; null is a no-op. A callback already running may still finish after this
// returns: where one must not, drain the subscription instead.
void close_subscription(natsSubscription* sub);
// Takes the subscription out of `slot` under `mu`, then closes it outside the lock, so a callback that
// needs `mu` can finish meanwhile.
void close_subscription(std::mutex& mu, natsSubscription*& slot);
// Drains `sub` and frees it; null is a no-op. Returns once no callback of it runs (waiting up to 5 s),
// so nothing touches the callback's object afterwards. On a closed connection (a host stopping with its
// server gone closes it first, NatsTransport's stop()) a drain cannot start: then it is unsubscribed, as
// by close_subscription, without waiting.
void drain_subscription(natsSubscription* sub);
// The same for the subscription in `slot`, taken out under `mu` and drained outside the lock, so a
// callback that needs `mu` can finish meanwhile.
void drain_subscription(std::mutex& mu, natsSubscription*& slot);

// A server unreachable for this long is taken as gone, where waiting for it only delays: a host that
// stops gives up on the publishes it cannot complete, and closes its connections.
inline constexpr std::chrono::seconds kUnreachableAfter{5};

class Connection {
 public:
  // Connects, retrying for up to options.connect_timeout while no server answers; refused credentials
  // and TLS mismatches throw at once with a hint. `name` shows in the server's connection list.
  Connection(const NatsOptions& options, const std::string& name);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  natsConnection* nc() const { return nc_; }
  jsCtx* js() const { return js_; }  // Wait = 5 s; for admin calls, KV and synchronous publishes
  bool connected() const;
  // How long the server has been unreachable: 0 while connected, else the time since the connection
  // was lost (or since it was made, if it never was up); for good (the maximum) once the server closed it.
  std::chrono::steady_clock::duration down_for() const;
  // Closes the connection for good (idempotent; the destructor also does): what still uses it fails at
  // once with NATS_CONNECTION_CLOSED instead of waiting for an answer.
  void close();
  // How many servers the client knows (the URLs it was given plus those the cluster announced).
  size_t known_servers() const;

  // Called after every reconnect (on a cnats thread). Register before relying on it; never removed.
  void on_reconnected(std::function<void()> listener);
  void on_disconnected(std::function<void()> listener);

 private:
  static void reconnected_cb(natsConnection* nc, void* closure);
  static void disconnected_cb(natsConnection* nc, void* closure);
  static void error_cb(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure);
  static void closed_cb(natsConnection* nc, void* closure);
  // Closes the connection and waits for its closed callback (which gets `this`) to have run.
  void close_and_wait();

  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  // When the connection was last lost, as steady_clock ticks (0: never); read without mu_.
  std::atomic<int64_t> lost_at_{0};
  std::atomic<bool> up_{false};       // connected once: a close before that is a failed connect, retried
  std::atomic<bool> closing_{false};  // close() or the destructor: the end that follows is ours
  std::atomic<bool> closed_by_server_{false};  // ended for good by itself (NatsOptions::connection_lost)
  std::function<void(const std::string&)> connection_lost_;
  std::mutex closed_mu_;
  std::condition_variable closed_cv_;
  bool closed_cb_ran_ = false;  // guarded by closed_mu_
  std::mutex mu_;
  std::vector<std::function<void()>> reconnected_;
  std::vector<std::function<void()>> disconnected_;
};

}  // namespace taskhost::transport::nats
