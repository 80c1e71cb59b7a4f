// What the NATS suites share: options tuned for fast tests, an in-process host on the NATS transport
// (a real Host with the real plugins), assignments, and readers that look at the streams directly.
#pragma once

#include "eventually.hpp"
#include "host/host.hpp"
#include "transport/nats/connection.hpp"
#include "transport/nats/names.hpp"
#include "transport/nats/nats_task_client.hpp"
#include "transport/nats/nats_transport.hpp"
#include "transport/nats/wire.hpp"

#include <google/protobuf/util/json_util.h>
#include <nats/nats.h>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace taskhost::testing {

using transport::nats::AckMode;
using transport::nats::NatsOptions;
using transport::nats::NatsTaskClient;
using transport::nats::NatsTransport;
using namespace std::chrono_literals;

// Short timeouts so faults are noticed within a test's patience.
inline NatsOptions test_options(const std::string& url, const std::string& worker, AckMode mode = AckMode::on_receipt) {
  NatsOptions o;
  o.url = url;
  o.worker_id = worker;
  o.ack_mode = mode;
  o.stream_prefix = "T";
  o.kv_bucket = "t_tasks";
  o.ack_wait = 2s;
  o.host_dead_after = 2s;
  o.record_after = 100ms;
  o.pull_expiry = 1s;
  o.connect_timeout = 10s;
  return o;
}

// One host in this process: NatsTransport + Host with the plugins of `plugins_dir`, started.
class HostRig {
 public:
  HostRig(const NatsOptions& options, std::filesystem::path plugins_dir = TASKHOST_PLUGIN_DIR, size_t max_active = 64,
          std::map<std::string, size_t> kind_limits = {}) {
    transport_ = std::make_unique<NatsTransport>(options);
    HostOptions ho;
    ho.plugins_dir = std::move(plugins_dir);
    ho.router.worker_id = options.worker_id;
    ho.router.max_active = max_active;
    ho.router.kind_limits.insert(kind_limits.begin(), kind_limits.end());
    ho.router.cancel_deadline = 3s;
    ho.router.worker_threads = 4;
    host_ = std::make_unique<Host>(ho, *transport_);
    transport_->start(host_->router(), host_->registry());
  }
  ~HostRig() {
    if (transport_) shutdown(2s);
  }
  HostRig(const HostRig&) = delete;
  HostRig& operator=(const HostRig&) = delete;

  Host& host() { return *host_; }
  NatsTransport& transport() { return *transport_; }

  // As if the process died: no drain, nothing completed; what was recorded stays recorded and what was
  // not acked comes back by redelivery.
  void crash() {
    transport_->stop();
    host_.reset();
    transport_.reset();
  }
  // SIGTERM: drain within `grace`, then stop.
  void shutdown(std::chrono::milliseconds grace) {
    transport_->drain(grace);
    transport_->stop();
    host_.reset();
    transport_.reset();
  }

 private:
  std::unique_ptr<NatsTransport> transport_;
  std::unique_ptr<Host> host_;
};

inline v1::TaskAssignment assignment(const std::string& id, const std::string& kind, const std::string& input_json,
                                     uint32_t heartbeat_secs = 0) {
  v1::TaskAssignment a;
  a.set_task_id(id);
  a.set_heartbeat_interval_secs(heartbeat_secs);
  a.mutable_execute()->set_component_id(kind);
  a.mutable_execute()->set_attempt(1);
  REQUIRE(google::protobuf::util::JsonStringToMessage(input_json, a.mutable_execute()->mutable_input()).ok());
  return a;
}

inline std::string json_of(const google::protobuf::Message& m) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

// Most predicates of these suites read a stream or the KV bucket from the server: they poll at this
// interval instead of eventually()'s 5 ms, so that polling does not load the server under test.
inline constexpr std::chrono::milliseconds kServerPoll{20};

// A plain connection for looking at the server directly (not through the code under test).
class Probe {
 public:
  explicit Probe(const std::string& url) {
    REQUIRE(natsConnection_ConnectTo(&nc_, url.c_str()) == NATS_OK);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10'000;
    jo.PublishAsync.MaxPending = 100'000;
    REQUIRE(natsConnection_JetStream(&js_, nc_, &jo) == NATS_OK);
  }
  ~Probe() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
  }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;
  natsConnection* nc() { return nc_; }
  jsCtx* js() { return js_; }

  // Every message stored under `subject` (wildcards allowed) in `stream`, in order: (subject, data).
  // Empty, or short, when the stream cannot be read right now: callers poll. Read by direct gets ("the
  // next message on this subject from sequence n"), with no subscription: cnats 3.4 aborted the test
  // process twice in the cluster fault tests while this read used a fresh ordered consumer per call.
  std::vector<std::pair<std::string, std::string>> read_all(const std::string& stream, const std::string& subject) {
    std::vector<std::pair<std::string, std::string>> out;
    transport::nats::for_each_stored(js_, stream, subject, [&](natsMsg* m, uint64_t) {
      out.emplace_back(natsMsg_GetSubject(m), std::string(natsMsg_GetData(m) ? natsMsg_GetData(m) : "",
                                                          static_cast<size_t>(natsMsg_GetDataLength(m))));
      natsMsg_Destroy(m);
    });
    return out;
  }

  // How many messages each subject matching `filter` holds in `stream`, from the stream's own state: one
  // request, cheap enough to poll while a cluster node restarts. Empty when the request fails.
  std::map<std::string, uint64_t> subject_counts(const std::string& stream, const std::string& filter) {
    std::map<std::string, uint64_t> out;
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = 10'000;
    o.Stream.Info.SubjectsFilter = filter.c_str();
    jsStreamInfo* si = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js_, stream.c_str(), &o, &code) != NATS_OK) return out;
    if (si->State.Subjects != nullptr) {
      for (int i = 0; i < si->State.Subjects->Count; ++i) {
        out.emplace(si->State.Subjects->List[i].Subject, si->State.Subjects->List[i].Msgs);
      }
    }
    jsStreamInfo_Destroy(si);
    return out;
  }

  // Every completion stored, by task id, in stream order (a task with two would show both).
  std::map<std::string, std::vector<v1::TaskCompletion>> completions(const transport::nats::Names& names) {
    std::map<std::string, std::vector<v1::TaskCompletion>> out;
    size_t malformed = 0;
    for (const auto& [subject, data] : read_all(names.events_stream(), names.prefix() + ".events.*.completion")) {
      auto items = transport::nats::decode_items(data);
      if (!items || items->empty() || !items->back().has_completion()) {
        if (malformed++ == 0) {
          std::string shape = items ? std::to_string(items->size()) + " items:" : "undecodable";
          if (items) {
            for (const auto& i : *items) shape += i.has_completion() ? " completion" : " event(" + json_of(i.event()) + ")";
          }
          MESSAGE("malformed completion batch on " << subject << ": " << shape);
        }
        continue;
      }
      out[items->back().completion().task_id()].push_back(items->back().completion());
    }
    CHECK(malformed == 0);
    return out;
  }

  // Every event and completion stored for one task (events and completion batches), in order; without
  // the status snapshots that end events batches unless `snapshots`.
  std::vector<v1::WatchItem> items_of(const transport::nats::Names& names, const std::string& task_id,
                                      bool snapshots = false) {
    std::vector<v1::WatchItem> out;
    for (const auto& [subject, data] : read_all(names.events_stream(), names.task_events_filter(task_id))) {
      auto items = transport::nats::decode_items(data);
      REQUIRE(items);
      for (auto& item : *items) {
        if (snapshots || !item.has_status()) out.push_back(std::move(item));
      }
    }
    return out;
  }

  jsConsumerInfo* consumer(const std::string& stream, const std::string& name) {
    jsConsumerInfo* ci = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetConsumerInfo(&ci, js_, stream.c_str(), name.c_str(), nullptr, &code) != NATS_OK) return nullptr;
    return ci;
  }

  // Stores assignments the way an orchestrator would (no queued record), asynchronously.
  void publish_tasks(const transport::nats::Names& names, const std::vector<v1::TaskAssignment>& tasks) {
    for (const auto& a : tasks) {
      const std::string bytes = a.SerializeAsString();
      const std::string subject = names.task_subject(a.execute().component_id());
      REQUIRE(js_PublishAsync(js_, subject.c_str(), bytes.data(), static_cast<int>(bytes.size()), nullptr) == NATS_OK);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60'000;
    REQUIRE(js_PublishAsyncComplete(js_, &po) == NATS_OK);
  }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

inline bool has_message(const std::vector<v1::WatchItem>& items, const std::string& text) {
  for (const auto& i : items) {
    if (i.has_event() && i.event().has_message() && i.event().message().text() == text) return true;
  }
  return false;
}

}  // namespace taskhost::testing
