#include "transport/nats/setup.hpp"

#include "common/log.hpp"

#include <chrono>
#include <string>

namespace taskhost::transport::nats {
namespace {

constexpr int64_t kNanosPerMs = 1'000'000;

int64_t nanos(std::chrono::nanoseconds d) { return d.count(); }

void ensure_stream(jsCtx* js, const std::string& name, const std::string& subject, jsRetentionPolicy retention,
                   std::chrono::nanoseconds max_age, int replicas) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  const char* subjects[] = {subject.c_str()};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Retention = retention;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas;
  cfg.MaxAge = nanos(max_age);
  cfg.Duplicates = 120'000 * kNanosPerMs;  // retried publishes carry a Nats-Msg-Id
  cfg.AllowDirect = true;

  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&si, js, &cfg, nullptr, &code);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return;
  }
  // Someone created it first, perhaps with other limits: use it as it is.
  jsStreamInfo* existing = nullptr;
  jsErrCode info_code = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&existing, js, name.c_str(), nullptr, &info_code) == NATS_OK) {
    jsStreamInfo_Destroy(existing);
    if (code != kJsStreamNameInUse) log::info("nats: using existing stream {} ({})", name, describe(s, "create"));
    return;
  }
  check(s, "create stream " + name, code);
}

}  // namespace

int replicas_for(const Connection& connection, const NatsOptions& o) {
  if (o.replicas > 0) return o.replicas;
  return connection.known_servers() >= 3 ? 3 : 1;
}

void ensure_streams(jsCtx* js, const Names& names, const NatsOptions& o) {
  ensure_stream(js, names.tasks_stream(), names.tasks_wildcard(), js_WorkQueuePolicy, std::chrono::nanoseconds(0),
                o.replicas);
  ensure_stream(js, names.events_stream(), names.events_wildcard(), js_LimitsPolicy, o.events_max_age, o.replicas);
  ensure_stream(js, names.control_stream(), names.control_wildcard(), js_LimitsPolicy, o.control_max_age,
                o.replicas);
}

void ensure_kind_consumer(jsCtx* js, const Names& names, const NatsOptions& o, std::string_view kind) {
  const std::string durable = names.consumer_name(kind);
  const std::string filter = names.task_subject(kind);
  const std::string stream = names.tasks_stream();
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = nanos(o.ack_wait);
  cc.MaxDeliver = -1;
  cc.FilterSubject = filter.c_str();
  cc.DeliverPolicy = js_DeliverAll;
  cc.MaxAckPending = 1'000'000;  // each host bounds its own share by its free slots
  cc.MaxWaiting = 512;
  cc.Replicas = o.replicas;

  jsConsumerInfo* ci = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_AddConsumer(&ci, js, stream.c_str(), &cc, nullptr, &code);
  if (s == NATS_OK) {
    jsConsumerInfo_Destroy(ci);
    return;
  }
  // It exists with other settings: take ours where the server allows, else keep it as it is.
  code = static_cast<jsErrCode>(0);
  if (js_UpdateConsumer(&ci, js, stream.c_str(), &cc, nullptr, &code) == NATS_OK) {
    jsConsumerInfo_Destroy(ci);
    return;
  }
  code = static_cast<jsErrCode>(0);
  s = js_GetConsumerInfo(&ci, js, stream.c_str(), durable.c_str(), nullptr, &code);
  check(s, "create consumer " + durable + " on " + stream, code);
  jsConsumerInfo_Destroy(ci);
}

kvStore* open_bucket(jsCtx* js, const Names& names, const NatsOptions& o) {
  kvStore* kv = nullptr;
  if (js_KeyValue(&kv, js, names.bucket().c_str()) == NATS_OK) return kv;
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = names.bucket().c_str();
  cfg.History = 1;
  cfg.StorageType = js_FileStorage;
  cfg.Replicas = o.replicas;
  natsStatus s = js_CreateKeyValue(&kv, js, &cfg);
  if (s == NATS_OK) return kv;
  // Created by another host between our two calls.
  if (js_KeyValue(&kv, js, names.bucket().c_str()) == NATS_OK) return kv;
  check(s, "create KV bucket " + names.bucket());
  return nullptr;
}

}  // namespace taskhost::transport::nats
