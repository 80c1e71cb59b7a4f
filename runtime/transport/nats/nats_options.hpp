// What the NATS JetStream transport needs to know: the operator's [nats] table (config::NatsConfig)
// plus the worker id and a few tuning knobs with defaults that suit production and tests alike.
//
// Plain values; thread rule: build once, then share read-only.
#pragma once

#include "config/config.hpp"

#include <chrono>
#include <functional>
#include <cstdint>
#include <string>

namespace taskhost::transport::nats {

enum class AckMode {
  on_receipt,     // ack once the host holds the task durably; the orchestrator owns timeouts and retries
  on_completion,  // ack after the completion is stored; JetStream redelivery is the retry
};

struct NatsOptions {
  // ---- the [nats] table --------------------------------------------------------------------------
  std::string url = "nats://127.0.0.1:4222";  // one URL or a comma-separated list (a cluster)
  std::string credentials;                    // .creds file; empty = none
  std::string user, password;                 // user/password authorization; empty = none
  std::string token;                          // token authorization; empty = none
  std::string nkey_seed_file;                 // nkey authorization: the user's seed file; empty = none
  std::string tls_ca;                         // PEM files; empty = none
  std::string tls_cert;
  std::string tls_key;
  AckMode ack_mode = AckMode::on_receipt;
  std::string stream_prefix = "TASKHOST";
  uint32_t max_deliver = 5;                   // a task delivered more often than this ends failed
  std::chrono::seconds ack_wait{30};          // JetStream redelivers an unacked task after this long
  std::string kv_bucket;                      // task ownership, checkpoints, host liveness; empty = the
                                              // prefix's own: "<prefix in lower case>_tasks"
  std::chrono::seconds host_dead_after{15};   // no liveness update for this long = the host is dead

  // ---- identity ----------------------------------------------------------------------------------
  std::string worker_id = "taskhost";         // must be unique among live hosts

  // ---- tuning ------------------------------------------------------------------------------------
  int replicas = 0;  // for the streams and bucket created here; 0 = 3 on a cluster of 3 or more, else 1
  // A task still running this long after receipt gets its KV ownership record (and, in on_receipt
  // mode, is acked then). Shorter tasks are acked once their completion is stored, so a task is never
  // acked before it is durably held. A checkpoint writes the record at once.
  std::chrono::milliseconds record_after{250};
  std::chrono::milliseconds pull_expiry{5'000};      // a pull request waits this long at the server
  std::chrono::milliseconds connect_timeout{30'000}; // keep trying to reach a server at start
  // Asked while trying to reach a server at start: true gives up at once (serve: a SIGTERM is waiting).
  std::function<bool()> stop_requested;
  // Called, on a cnats thread, when a connection ended for good by itself: the server closed it over a
  // protocol error (a subject past its control line limit, say) and cnats does not reconnect after that.
  // Everything published on it from then on fails, so a host should stop (serve exits with status 1);
  // other hosts re-attach its tasks from their records, as after a crash. `why` is the server's error.
  std::function<void(const std::string& why)> connection_lost;
  std::chrono::hours control_max_age{24};            // steering/cancel kept this long for queued tasks
  std::chrono::hours events_max_age{24 * 7};         // events and completions kept this long
};

// The transport's options from the operator's config; `worker_id` is config::effective_worker_id's.
NatsOptions nats_options(const config::NatsConfig& config, std::string worker_id);

}  // namespace taskhost::transport::nats
