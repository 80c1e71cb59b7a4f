// Creating what the transport needs on the server, tolerating what already exists: the three streams,
// the KV bucket and one durable pull consumer per kind (names.hpp lists them).
//
// Every function is idempotent: a stream or consumer that exists is kept (its consumer settings are
// updated to ours when they differ and the server allows it). Errors throw NatsError.
//
// Thread rule: synchronous JetStream API calls; safe from any thread except a cnats callback thread.
#pragma once

#include "transport/nats/connection.hpp"
#include "transport/nats/names.hpp"
#include "transport/nats/nats_options.hpp"

#include <string_view>

namespace taskhost::transport::nats {

// options.replicas, or when it is 0, what suits the deployment the connection sees.
int replicas_for(const Connection& connection, const NatsOptions& options);

// Creates the streams with options.replicas (which must be resolved: not 0).
void ensure_streams(jsCtx* js, const Names& names, const NatsOptions& options);

// The shared durable pull consumer of `kind`. Redelivery is unlimited at the server: the host itself
// ends a task failed once it was delivered more than max_deliver times, so the end is always recorded.
void ensure_kind_consumer(jsCtx* js, const Names& names, const NatsOptions& options, std::string_view kind);

// Opens the bucket, creating it first if needed. The caller owns the result (kvStore_Destroy).
kvStore* open_bucket(jsCtx* js, const Names& names, const NatsOptions& options);

}  // namespace taskhost::transport::nats
