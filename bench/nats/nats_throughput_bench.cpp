// Tasks/s through one host on the NATS transport against a bare cnats pull consumer that only acks, on the
// same nats-server in the same run. Goal: host >= 0.8x the bare consumer.
//
//   BM_nats_bare_pull_ack   natsSubscription_Fetch(batch = 256) on a durable pull consumer, ack each.
//   BM_nats_host            one NatsTransport + Host (max_active 256) running interactive.echo: pull with
//                           backpressure, the router and plugin call, events + completion stored (one
//                           compare-and-set publish per task), ack.
// Both consume N messages that were stored before the clock starts. The host's clock includes its
// start() (binding consumers, liveness key, control stream), a few ms against a run of about a second.
#include "ratio_main.hpp"

#include "nats_server.hpp"

#include "host/host.hpp"
#include "transport/nats/names.hpp"
#include "transport/nats/nats_transport.hpp"

#include <google/protobuf/util/json_util.h>
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

using namespace taskhost;
namespace tn = taskhost::transport::nats;

namespace {

constexpr int kTasks = 20'000;
constexpr int kCapacity = 256;

// One server for the whole run, started on first use.
testing::NatsSingle& server() {
  static testing::NatsSingle single;
  return single;
}

struct Js {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  Js() {
    natsConnection_ConnectTo(&nc, server().url().c_str());
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 30'000;
    jo.PublishAsync.MaxPending = 50'000;
    natsConnection_JetStream(&js, nc, &jo);
  }
  ~Js() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
  void publish(const std::string& subject, const std::vector<std::string>& payloads) {
    for (const auto& p : payloads) js_PublishAsync(js, subject.c_str(), p.data(), static_cast<int>(p.size()), nullptr);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60'000;
    js_PublishAsyncComplete(js, &po);
  }
};

std::vector<std::string> echo_assignments(const std::string& prefix) {
  std::vector<std::string> out;
  out.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    v1::TaskAssignment a;
    a.set_task_id(prefix + std::to_string(i));
    a.mutable_execute()->set_component_id("interactive.echo");
    a.mutable_execute()->set_attempt(1);
    (void)google::protobuf::util::JsonStringToMessage(R"({"n":)" + std::to_string(i) + "}",
                                                      a.mutable_execute()->mutable_input());
    out.push_back(a.SerializeAsString());
  }
  return out;
}

int run_id() {
  static int n = 0;
  return ++n;
}

// The bare consumer: fetch `kCapacity` at a time from a durable pull consumer and ack each. With
// `store` it also stores one completion-sized message per task (async, "subject must be empty", what the
// host's first-completion-wins write costs the server) before acking: the least any durable transport
// must do per task.
void bare_consumer(benchmark::State& state, bool store) {
  Js c;
  const std::string completion(320, 'c');
  for (auto _ : state) {
    const std::string stream = "BARE" + std::to_string(run_id());
    const std::string subject = stream + ".tasks.interactive.echo";
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = stream.c_str();
    const std::string wildcard = stream + ".tasks.>";
    const char* subjects[] = {wildcard.c_str()};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    jsErrCode code = static_cast<jsErrCode>(0);
    jsStreamInfo* si = nullptr;
    js_AddStream(&si, c.js, &sc, nullptr, &code);
    jsStreamInfo_Destroy(si);
    const std::string events = stream + "_EVENTS";
    const std::string events_wildcard = stream + ".events.>";
    if (store) {
      jsStreamConfig ec;
      jsStreamConfig_Init(&ec);
      ec.Name = events.c_str();
      const char* esubjects[] = {events_wildcard.c_str()};
      ec.Subjects = esubjects;
      ec.SubjectsLen = 1;
      js_AddStream(&si, c.js, &ec, nullptr, &code);
      jsStreamInfo_Destroy(si);
    }
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "bare";
    cc.AckPolicy = js_AckExplicit;
    cc.FilterSubject = subject.c_str();
    cc.MaxAckPending = 1'000'000;
    jsConsumerInfo* ci = nullptr;
    js_AddConsumer(&ci, c.js, stream.c_str(), &cc, nullptr, &code);
    jsConsumerInfo_Destroy(ci);
    c.publish(subject, echo_assignments("b-"));
    natsSubscription* sub = nullptr;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream.c_str();
    so.Consumer = "bare";
    js_PullSubscribe(&sub, c.js, subject.c_str(), "bare", nullptr, &so, &code);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectNoMessage = true;

    const auto t0 = std::chrono::steady_clock::now();
    int done = 0;
    while (done < kTasks) {
      natsMsgList list;
      if (natsSubscription_Fetch(&list, sub, kCapacity, 5'000, &code) != NATS_OK) break;
      for (int i = 0; i < list.Count; ++i) {
        if (store) {
          const std::string to = stream + ".events." + std::to_string(done + i) + ".completion";
          js_PublishAsync(c.js, to.c_str(), completion.data(), static_cast<int>(completion.size()), &po);
        }
        natsMsg_Ack(list.Msgs[i], nullptr);
      }
      done += list.Count;
      natsMsgList_Destroy(&list);
    }
    if (store) {
      jsPubOptions wait;
      jsPubOptions_Init(&wait);
      wait.MaxWait = 60'000;
      js_PublishAsyncComplete(c.js, &wait);
    }
    natsConnection_Flush(c.nc);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    natsSubscription_Destroy(sub);
    js_DeleteStream(c.js, stream.c_str(), nullptr, &code);
    if (store) js_DeleteStream(c.js, events.c_str(), nullptr, &code);
    if (done < kTasks) state.SkipWithError("bare consumer did not get every message");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kTasks);
}

void BM_nats_bare_pull_ack(benchmark::State& state) { bare_consumer(state, false); }
void BM_nats_bare_pull_store_ack(benchmark::State& state) { bare_consumer(state, true); }

void BM_nats_host(benchmark::State& state) {
  Js c;
  for (auto _ : state) {
    tn::NatsOptions o;
    o.url = server().url();
    o.stream_prefix = "HOST" + std::to_string(run_id());
    o.kv_bucket = "bench_" + o.stream_prefix;
    o.worker_id = "bench";
    const tn::Names names(o.stream_prefix, o.kv_bucket);
    int done = 0;
    {
      tn::NatsTransport transport(o);
      c.publish(names.task_subject("interactive.echo"), echo_assignments("h-"));
      HostOptions ho;
      ho.plugins_dir = TASKHOST_PLUGIN_DIR;
      ho.router.worker_id = o.worker_id;
      ho.router.max_active = kCapacity;
      Host host(ho, transport);

      const auto t0 = std::chrono::steady_clock::now();
      transport.start(host.router(), host.registry());
      const auto deadline = t0 + std::chrono::seconds(120);
      double active_sum = 0;
      int samples = 0;
      while (transport.stats().completions < static_cast<uint64_t>(kTasks) && std::chrono::steady_clock::now() < deadline) {
        // The measuring thread shares the two cores with the host and the server: poll coarsely (a
        // 200 µs poll cost the host ≈9 % of its CPU in wake-ups), which bounds the clock's error to 2 ms.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        active_sum += static_cast<double>(host.router().active_count());
        ++samples;
      }
      // How full the host was kept: tasks in the router, on average, out of kCapacity.
      state.counters["avg_active"] = samples ? active_sum / samples : 0;
      natsConnection_Flush(c.nc);
      state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      done = static_cast<int>(transport.stats().completions);
      const auto s = transport.stats();
      state.counters["pull_requests"] = static_cast<double>(s.pull_requests);
      transport.stop();
    }
    jsErrCode code = static_cast<jsErrCode>(0);
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, c.js, names.events_stream().c_str(), nullptr, &code) == NATS_OK) {
      // How well events coalesce: stored messages per task (1.0 = everything rode with the completion).
      state.counters["events_msgs_per_task"] = static_cast<double>(si->State.Msgs) / kTasks;
      jsStreamInfo_Destroy(si);
    }
    for (const auto& stream : {names.tasks_stream(), names.events_stream(), names.control_stream(), names.kv_stream()}) {
      js_DeleteStream(c.js, stream.c_str(), nullptr, &code);
    }
    if (done < kTasks) state.SkipWithError("host did not complete every task");
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kTasks);
}

// The ceiling the host can reach whatever the transport: the same Host and plugin, assignments handed to
// the router from memory, an outbox that only counts completions. host / this = the transport's share.
class CountingOutbox : public transport::TaskOutbox {
 public:
  void on_event(const v1::TaskEvent&) override {}
  void on_heartbeat(const v1::Heartbeat&) override {}
  void on_checkpoint(const std::string&, uint32_t, std::string_view) override {}
  void on_completion(const v1::TaskCompletion&) override { ++done; }
  std::atomic<int> done{0};
};

void BM_router_only(benchmark::State& state) {
  for (auto _ : state) {
    CountingOutbox outbox;
    HostOptions ho;
    ho.plugins_dir = TASKHOST_PLUGIN_DIR;
    ho.router.max_active = kCapacity;
    Host host(ho, outbox);
    std::vector<v1::TaskAssignment> tasks;
    for (const auto& bytes : echo_assignments("r-")) {
      tasks.emplace_back();
      tasks.back().ParseFromString(bytes);
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& a : tasks) {
      // Like a pulling transport: never more than the free slots.
      while (host.router().free_slots("interactive.echo") == 0) std::this_thread::yield();
      host.router().assign(a);
    }
    while (outbox.done < kTasks) std::this_thread::sleep_for(std::chrono::microseconds(200));
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kTasks);
}

}  // namespace

BENCHMARK(BM_router_only)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_nats_bare_pull_ack)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_nats_bare_pull_store_ack)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_nats_host)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(1);

TASKHOST_BENCH_MAIN({{"BM_nats_host", "BM_nats_bare_pull_ack", 0.8, true},
                     {"BM_nats_host", "BM_nats_bare_pull_store_ack", 0.8, true},
                     {"BM_nats_host", "BM_router_only", 0.8, true}})
