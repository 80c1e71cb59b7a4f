// The NATS transport through the real parts: a real nats-server per test, real Hosts with the sample
// plugins (hello.greet, interactive.count, interactive.echo), NatsTaskClient as the CLI uses it, and a
// probe that reads the streams directly to check what was really stored.
#include "nats_server.hpp"
#include "transport/nats/record_store.hpp"
#include "rig.hpp"

#include "transport/nats/async_publisher.hpp"
#include "transport/nats/puller.hpp"
#include "transport/nats/setup.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <string_view>

using namespace taskhost;
using namespace taskhost::testing;
namespace tn = taskhost::transport::nats;

namespace {

double number(const v1::TaskCompletion& c, const std::string& field) {
  const auto& f = c.output().struct_value().fields();
  auto it = f.find(field);
  return it == f.end() ? -1 : it->second.number_value();
}

std::vector<std::string> kinds_served(const std::filesystem::path& dir, const std::string& only_file,
                                      const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy_file(dir / only_file, to / only_file, std::filesystem::copy_options::overwrite_existing);
  return {only_file};
}

}  // namespace

TEST_CASE("the transport creates its streams, bucket and consumers, and a second host keeps them") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "w1");
  {
    HostRig a(o);
    HostRig b(test_options(nats.url(), "w2"));
    Probe p(nats.url());
    const tn::Names& n = a.transport().names();
    for (const auto& s : {n.tasks_stream(), n.events_stream(), n.control_stream(), n.kv_stream()}) {
      jsStreamInfo* si = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      CHECK_MESSAGE(js_GetStreamInfo(&si, p.js(), s.c_str(), nullptr, &code) == NATS_OK, s);
      jsStreamInfo_Destroy(si);
    }
    // Both hosts bind the same shared durable consumer per kind.
    CHECK(eventually([&] {
      jsConsumerInfo* ci = p.consumer(n.tasks_stream(), n.consumer_name("hello.greet"));
      if (ci == nullptr) return false;
      jsConsumerInfo_Destroy(ci);
      ci = p.consumer(n.tasks_stream(), n.consumer_name("interactive.count"));
      if (ci == nullptr) return false;
      jsConsumerInfo_Destroy(ci);
      return true;
    }, 10s, kServerPoll));
  }
}

TEST_CASE("events and the first completion are stored; a second completion for the task is refused") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "w1");
  NatsTransport t(o);  // not started: only the publishing side
  v1::TaskEvent e;
  e.set_task_id("t.1");
  e.set_attempt(1);
  e.set_seq(1);
  e.mutable_state()->set_state(v1::RUNNING);
  t.on_event(e);
  v1::TaskCompletion first;
  first.set_task_id("t.1");
  first.set_attempt(1);
  first.set_state(v1::SUCCEEDED);
  first.set_worker_id("w1");
  t.on_completion(first);
  Probe p(nats.url());
  REQUIRE(eventually([&] { return p.completions(t.names()).size() == 1; }, 10s, kServerPoll));
  v1::TaskCompletion second = first;
  second.set_state(v1::FAILED);
  second.set_worker_id("w2");
  t.on_completion(second);
  REQUIRE(eventually([&] { return t.stats().duplicates == 1; }));
  const auto all = p.completions(t.names());
  REQUIRE(all.at("t.1").size() == 1);
  CHECK(all.at("t.1")[0].state() == v1::SUCCEEDED);
  const auto items = p.items_of(t.names(), "t.1");
  REQUIRE(items.size() == 2);
  CHECK(items[0].event().state().state() == v1::RUNNING);
  CHECK(items[1].completion().worker_id() == "w1");
}

TEST_CASE("a submitted task runs on a host and the client sees its events and completion") {
  NatsSingle nats;
  for (AckMode mode : {AckMode::on_receipt, AckMode::on_completion}) {
    CAPTURE(static_cast<int>(mode));
    const std::string id = mode == AckMode::on_receipt ? "greet-r" : "greet-c";
    HostRig host(test_options(nats.url(), "w1", mode));
    NatsTaskClient client(test_options(nats.url(), "client", mode));
    CHECK(client.submit(assignment(id, "hello.greet", R"({"name":"Ada"})")) == id);
    const auto c = client.wait(id, 10s);
    CHECK(c.state() == v1::SUCCEEDED);
    CHECK(c.output().string_value() == "Hello, Ada!");
    CHECK(c.worker_id() == "w1");
    const auto s = client.status(id);
    CHECK(s.state() == v1::SUCCEEDED);
    CHECK(s.has_completion());
    std::vector<v1::TaskState> states;
    client.watch(id, [&](const v1::WatchItem& i) {
      if (i.has_event() && i.event().has_state()) states.push_back(i.event().state().state());
      return !i.has_completion();
    }, 5s);
    CHECK(std::find(states.begin(), states.end(), v1::RUNNING) != states.end());
    CHECK(states.back() == v1::SUCCEEDED);
    // Acked and cleaned up: nothing left in the work queue or the bucket.
    Probe p(nats.url());
    const tn::Names& n = host.transport().names();
    CHECK(eventually([&] {
      jsConsumerInfo* ci = p.consumer(n.tasks_stream(), n.consumer_name("hello.greet"));
      const bool idle = ci != nullptr && ci->NumAckPending == 0 && ci->NumPending == 0;
      jsConsumerInfo_Destroy(ci);
      return idle;
    }, 10s, kServerPoll));
    CHECK(eventually([&] { return client.list().tasks_size() == 0; }, 10s, kServerPoll));
  }
}

namespace {

// How many task deliveries a host holds, as the host itself sees them: a plain subscription to every
// subject sees each task delivery the server sends to the host (its reply is an ack subject of a consumer
// on the tasks stream) and each answer the host publishes to one (+ACK, -NAK, +TERM end the hold; +WPI
// does not). Held = delivered and not yet answered, by stream sequence.
//
// Not the consumer's NumAckPending: the server processes acks on a queue of their own, apart from pull
// requests, so a pull the host sends after its ack on the same connection can be served before that ack
// is counted — the server then reports more held than the host ever had. Here the order is the
// host's: the server forwards the host's ack to this subscription as it reads it, before it reads the
// pull request behind it, so the delivery that pull causes always comes after the ack. A host that pulls
// more than its free slots receives the extra delivery before it answers, and the count goes over.
class HeldCounter {
 public:
  HeldCounter(const std::string& url, const std::string& tasks_stream)
      : prefix_("$JS.ACK."), stream_token_("." + tasks_stream + ".") {
    REQUIRE(natsConnection_ConnectTo(&nc_, url.c_str()) == NATS_OK);
    REQUIRE(natsConnection_Subscribe(&sub_, nc_, ">", &HeldCounter::on_msg, this) == NATS_OK);
    natsSubscription_SetPendingLimits(sub_, -1, -1);
    REQUIRE(natsConnection_Flush(nc_) == NATS_OK);  // listening before the host starts
  }
  ~HeldCounter() {
    // Drained: no callback is still running when the members go.
    if (natsSubscription_Drain(sub_) == NATS_OK) natsSubscription_WaitForDrainCompletion(sub_, 5000);
    natsSubscription_Destroy(sub_);
    natsConnection_Destroy(nc_);
  }
  HeldCounter(const HeldCounter&) = delete;
  HeldCounter& operator=(const HeldCounter&) = delete;

  size_t most() {
    std::lock_guard lock(mu_);
    return most_;
  }
  size_t deliveries() {
    std::lock_guard lock(mu_);
    return deliveries_;
  }
  int64_t dropped() {
    int64_t n = 0;
    natsSubscription_GetDropped(sub_, &n);
    return n;
  }

 private:
  bool ours(std::string_view ack_subject) const {
    return ack_subject.substr(0, prefix_.size()) == prefix_ && ack_subject.find(stream_token_) != std::string_view::npos;
  }
  static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    auto* self = static_cast<HeldCounter*>(closure);
    const std::string_view subject = natsMsg_GetSubject(msg);
    const char* reply = natsMsg_GetReply(msg);
    std::lock_guard lock(self->mu_);
    if (reply != nullptr && self->ours(reply)) {
      // A delivery (a redelivery of a held one keeps holding the same message).
      if (const auto info = tn::parse_ack_reply(reply)) {
        self->held_.insert(info->stream_seq);
        self->deliveries_++;
        self->most_ = std::max(self->most_, self->held_.size());
      }
    } else if (self->ours(subject)) {
      const std::string_view body(natsMsg_GetData(msg) ? natsMsg_GetData(msg) : "",
                                  static_cast<size_t>(natsMsg_GetDataLength(msg)));
      if (body.substr(0, 4) != "+WPI") {
        if (const auto info = tn::parse_ack_reply(subject)) self->held_.erase(info->stream_seq);
      }
    }
    natsMsg_Destroy(msg);
  }

  const std::string prefix_;
  const std::string stream_token_;
  natsConnection* nc_ = nullptr;
  natsSubscription* sub_ = nullptr;
  std::mutex mu_;
  std::set<uint64_t> held_;
  size_t most_ = 0;
  size_t deliveries_ = 0;
};

// Runs 12 short interactive.count tasks through one on_completion host and returns the most task
// deliveries the host held unanswered at once (HeldCounter), checking every task succeeded.
uint64_t most_held(size_t max_active, std::map<std::string, size_t> kind_limits, size_t* most_active) {
  NatsSingle nats;
  auto o = test_options(nats.url(), "w1", AckMode::on_completion);
  NatsTaskClient client(o);
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    ids.push_back(client.submit(assignment("bp-" + std::to_string(i), "interactive.count",
                                           R"({"steps":3,"delay_ms":30})")));
  }
  const tn::Names names(o.stream_prefix, o.kv_bucket);
  HeldCounter held(nats.url(), names.tasks_stream());
  HostRig host(o, TASKHOST_PLUGIN_DIR, max_active, std::move(kind_limits));
  Probe p(nats.url());
  const tn::Names& n = host.transport().names();
  const std::string consumer = n.consumer_name("interactive.count");
  size_t max_active_seen = 0;
  bool queue_kept_work = false;
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      if (jsConsumerInfo* ci = p.consumer(n.tasks_stream(), consumer)) {
        if (ci->NumAckPending > 0 && ci->NumPending > 0) queue_kept_work = true;
        jsConsumerInfo_Destroy(ci);
      }
      max_active_seen = std::max(max_active_seen, host.host().router().active_count());
      std::this_thread::sleep_for(5ms);
    }
  });
  for (const auto& id : ids) CHECK(client.wait(id, 30s).state() == v1::SUCCEEDED);
  done = true;
  watcher.join();
  CHECK(queue_kept_work);  // the rest waited in the stream, available to any other host
  CHECK(held.deliveries() >= 12);  // the counter saw every delivery
  CHECK(held.dropped() == 0);
  *most_active = max_active_seen;
  return held.most();
}

}  // namespace

TEST_CASE("a backlog is taken in batches: one admission per pull's worth, every task run once") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "w1");
  o.ack_wait = 30s;  // no redelivery of a slow ack (under TSan) inflates the exact counts below
  NatsTaskClient client(o);
  constexpr int kTasks = 300;
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) {
    ids.push_back(client.submit(assignment("bt-" + std::to_string(i), "hello.greet", R"({"name":"Ada"})")));
  }
  HostRig host(o, TASKHOST_PLUGIN_DIR, 256);
  for (const auto& id : ids) REQUIRE(client.wait(id, 30s).state() == v1::SUCCEEDED);
  const auto s = host.transport().stats();
  CHECK(s.received == static_cast<uint64_t>(kTasks));
  CHECK(s.completions == static_cast<uint64_t>(kTasks));
  CHECK(s.duplicates == 0);
  // A pull's messages reach the inbox together: the puller hands them on in groups, not one by one.
  CHECK(s.largest_intake_batch > 1);
  CHECK(s.largest_intake_batch <= tn::Puller::kMaxDeliveryBatch);
  CHECK(s.intake_batches < s.received);
}

TEST_CASE("a host never holds more tasks than it has free slots") {
  // on_completion: an unacked delivery is a task the host holds (running, or ended and not yet stored).
  size_t active = 0;
  SUBCASE("two slots for the whole host, shared by every kind it serves (idle ones included)") {
    CHECK(most_held(2, {}, &active) <= 2);
    CHECK(active <= 2);
  }
  SUBCASE("two slots for the kind on a host with many") {
    CHECK(most_held(64, {{"interactive.count", 2}}, &active) <= 2);
    CHECK(active <= 2);
  }
}

TEST_CASE("on_completion: in-progress acks keep a task longer than ack_wait on its host") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "holder", AckMode::on_completion);  // ack_wait 2 s
  NatsTaskClient client(o);
  HostRig holder(o);
  const std::string id = client.submit(assignment("slow", "interactive.count", R"({"steps":35,"delay_ms":100})"));
  REQUIRE(eventually([&] { return client.status(id).worker_id() == "holder"; }, 10s, kServerPoll));
  HostRig idle(test_options(nats.url(), "idle", AckMode::on_completion));  // would get a redelivery
  const auto c = client.wait(id, 20s);
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.worker_id() == "holder");
  CHECK(c.attempt() == 1);
  CHECK(idle.transport().stats().received == 0);
}

TEST_CASE("steering sent before a task was picked up applies when it starts; a cancel ends it there and then") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "w1");
  NatsTaskClient client(o);
  client.set_receipt_wait(300ms);
  client.submit(assignment("early-steer", "interactive.count", R"({"steps":3,"delay_ms":50})"));
  client.submit(assignment("early-cancel", "interactive.count", R"({"steps":50,"delay_ms":50})"));
  v1::SteeringMessage m;
  m.set_task_id("early-steer");
  m.add_parts()->set_text("hello early");
  const auto r1 = client.send(m);
  CHECK(r1.outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(r1.detail().find("queued") != std::string::npos);
  v1::CancelRequest cancel;
  cancel.set_task_id("early-cancel");
  cancel.set_reason("changed my mind");
  CHECK(client.cancel(cancel).outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(client.status("early-steer").state() == v1::PENDING);

  HostRig host(o);
  const auto c1 = client.wait("early-steer", 10s);
  CHECK(c1.state() == v1::SUCCEEDED);
  Probe p(nats.url());
  CHECK(has_message(p.items_of(host.transport().names(), "early-steer"), "echo: hello early"));
  const auto c2 = client.wait("early-cancel", 10s);
  CHECK(c2.state() == v1::CANCELED);
  CHECK(c2.worker_id().empty());  // ended by the cancel itself, not by a host that started it
}

TEST_CASE("steering and cancel reach the task on whichever host holds it; after the end the answer says so") {
  NatsSingle nats;
  HostRig a(test_options(nats.url(), "host-a"));
  HostRig b(test_options(nats.url(), "host-b"));
  NatsTaskClient client(test_options(nats.url(), "client"));
  const std::string id = client.submit(assignment("far", "interactive.count", R"({"steps":400,"delay_ms":20})"));
  std::string holder;
  REQUIRE(eventually([&] {
    const auto s = client.status(id);
    holder = s.worker_id();
    return s.state() == v1::RUNNING && !holder.empty();
  }, 10s, kServerPoll));
  CHECK((holder == "host-a" || holder == "host-b"));

  v1::SteeringMessage m;
  m.set_task_id(id);
  m.add_parts()->set_text("ping");
  const auto r = client.send(m);
  CHECK(r.outcome() == v1::DeliveryReceipt::ACCEPTED);
  Probe p(nats.url());
  REQUIRE(eventually([&] { return has_message(p.items_of(a.transport().names(), id), "echo: ping"); }, 10s,
                     kServerPoll));
  for (const auto& i : p.items_of(a.transport().names(), id)) {
    if (i.has_event() && i.event().has_message()) CHECK(i.event().worker_id() == holder);
  }

  v1::CancelRequest cancel;
  cancel.set_task_id(id);
  CHECK(client.cancel(cancel).outcome() == v1::DeliveryReceipt::ACCEPTED);
  const auto c = client.wait(id, 10s);
  CHECK(c.state() == v1::CANCELED);
  CHECK(c.worker_id() == holder);

  const auto late = client.send(m);
  CHECK(late.outcome() == v1::DeliveryReceipt::TASK_ENDED);
  v1::SteeringMessage nobody;
  nobody.set_task_id("no-such-task");
  nobody.add_parts()->set_text("hi");
  client.set_receipt_wait(300ms);
  CHECK(client.send(nobody).outcome() == v1::DeliveryReceipt::UNKNOWN_TASK);
}

TEST_CASE("status of a task waiting for input stays so after an outbound message; ended, it keeps its submit time") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  HostRig host(test_options(nats.url(), "w1"));
  const std::string id =
      client.submit(assignment("waits", "interactive.count", R"({"steps":4,"delay_ms":50,"ask":true,"ask_at":2})"));
  REQUIRE(eventually([&] { return client.status(id).state() == v1::WAITING_INPUT; }, 10s, kServerPoll));
  const double progress = client.status(id).progress().current();
  const int64_t created = client.status(id).created_unix_ms();
  CHECK(created > 0);
  // The task echoes steering as an outbound message: its next events batch holds only that.
  v1::SteeringMessage m;
  m.set_task_id(id);
  m.add_parts()->set_text("hello");
  REQUIRE(client.send(m).outcome() == v1::DeliveryReceipt::ACCEPTED);
  Probe p(nats.url());
  REQUIRE(eventually([&] { return has_message(p.items_of(host.transport().names(), id), "echo: hello"); }, 10s,
                     kServerPoll));
  const auto s = client.status(id);
  CHECK(s.state() == v1::WAITING_INPUT);  // was RUNNING "held by w1", with the request and progress gone
  CHECK(s.pending_request_id() == "confirm");
  CHECK(s.progress().current() == progress);
  m.clear_parts();
  m.add_parts()->set_text("yes");
  m.set_in_reply_to("confirm");
  REQUIRE(client.send(m).outcome() == v1::DeliveryReceipt::ACCEPTED);
  const auto done = client.wait(id, 20s);
  CHECK(done.state() == v1::SUCCEEDED);
  // Ended, it keeps when it was submitted (was overwritten with the time of its end).
  const auto ended = client.status(id);
  CHECK(ended.created_unix_ms() == created);
  CHECK(ended.updated_unix_ms() == done.unix_ms());
  CHECK(ended.created_unix_ms() < ended.updated_unix_ms());
}

TEST_CASE("megabytes of output within one linger are stored in batches the server takes: watchers lose none") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  HostRig host(test_options(nats.url(), "w1"));
  // 8 MB as fast as a pipe goes: one 20 ms linger held several MB, over the server's 1 MiB max_payload.
  const std::string id = client.submit(
      assignment("loud", "exec.run", R"({"argv":["sh","-c","head -c 8000000 /dev/zero | tr '\\0' a"]})"));
  CHECK(client.wait(id, 60s).state() == v1::SUCCEEDED);
  Probe p(nats.url());
  size_t bytes = 0;
  REQUIRE(eventually([&] {
    bytes = 0;
    for (const auto& i : p.items_of(host.transport().names(), id)) {
      if (i.has_event() && i.event().has_output()) bytes += i.event().output().delta().size();
    }
    return bytes == 8'000'000;
  }, 10s, kServerPoll));
  CHECK(bytes == 8'000'000);
}

TEST_CASE("on_receipt: a dead host's recorded task is re-attached elsewhere from its checkpoint") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  auto a = std::make_unique<HostRig>(test_options(nats.url(), "dies"));
  const std::string id = client.submit(assignment("survivor", "interactive.count", R"({"steps":60,"delay_ms":40})"));
  REQUIRE(eventually([&] {
    const auto s = client.status(id);
    return s.worker_id() == "dies" && s.progress().current() >= 5;
  }, 10s, kServerPoll));
  a->crash();
  HostRig b(test_options(nats.url(), "rescuer"));
  const auto c = client.wait(id, 20s);
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.worker_id() == "rescuer");
  CHECK(c.attempt() == 2);
  CHECK(number(c, "resumed_from") >= 5);
  CHECK(number(c, "counted") == 60);
  CHECK(b.transport().stats().reattached == 1);
  Probe p(nats.url());
  CHECK(p.completions(b.transport().names()).at(id).size() == 1);
}

TEST_CASE("on_receipt: a task re-attached on its own host records its new checkpoints; a rescuer resumes from them") {
  NatsSingle nats;
  TempDir dir{"taskhost-nats-migrate"};
  const auto plugins = dir.path() / "plugins";
  std::filesystem::create_directories(plugins);
  std::filesystem::copy_file(std::filesystem::path(TASKHOST_FIXTURE_DIR) / "scripted-v1.so", plugins / "scripted.so");
  NatsTaskClient client(test_options(nats.url(), "client"));
  auto a = std::make_unique<HostRig>(test_options(nats.url(), "moves"), plugins);
  const std::string id = client.submit(assignment("moved", "test.hold", R"("hold")"));
  REQUIRE(eventually([&] { return client.status(id).state() == v1::RUNNING; }, 10s, kServerPoll));

  // A reload that migrates: attempt 2 on version 2, on the same host.
  std::filesystem::copy_file(std::filesystem::path(TASKHOST_FIXTURE_DIR) / "scripted-v2.so", plugins / "scripted.so",
                             std::filesystem::copy_options::overwrite_existing);
  REQUIRE(a->host().reload(true).errors.empty());
  REQUIRE(eventually([&] { return client.status(id).attempt() == 2; }, 10s, kServerPoll));
  v1::SteeringMessage m;
  m.set_task_id(id);
  m.add_parts()->set_text("ckpt:after-move");
  REQUIRE(client.send(m).outcome() == v1::DeliveryReceipt::ACCEPTED);
  Probe p(nats.url());
  const tn::Names names = a->transport().names();  // a copy: the transport goes with the crash
  REQUIRE(eventually([&] {  // the record holds attempt 2's checkpoint
    const auto records = p.read_all(names.kv_stream(), names.kv_subject(tn::Names::task_key(id)));
    return !records.empty() && records.back().second.find("after-move") != std::string::npos;
  }, 10s, kServerPoll));

  a->crash();
  HostRig b(test_options(nats.url(), "rescuer"), plugins);
  const auto resumed = [&] {
    for (const auto& i : p.items_of(names, id)) {
      if (i.has_event() && i.event().has_message() && i.event().message().text().rfind("resumed:", 0) == 0) {
        if (i.event().attempt() == 2 && i.event().worker_id() == "rescuer") return i.event().message().text();
      }
    }
    return std::string();
  };
  REQUIRE(eventually([&] { return !resumed().empty(); }, 20s, kServerPoll));
  // From attempt 2's checkpoint. As attempt 2: the record counts claims by hosts (what max_deliver and an
  // ownership conflict compare), not the restarts a host made of its own claim.
  CHECK(resumed() == "resumed:after-move:attempt=2");
  v1::CancelRequest cancel;
  cancel.set_task_id(id);
  client.cancel(cancel);
}

TEST_CASE("on_receipt: steering the dead attempt took before its checkpoint is not applied again after re-attach") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  auto a = std::make_unique<HostRig>(test_options(nats.url(), "dies"));
  const std::string id = client.submit(assignment("steered", "interactive.count", R"({"steps":200,"delay_ms":40})"));
  REQUIRE(eventually([&] { return client.status(id).state() == v1::RUNNING; }, 10s, kServerPoll));
  // Started after the task is held: it keeps the task's control messages, as every other host does.
  HostRig b(test_options(nats.url(), "survivor"));
  const auto send = [&](const std::string& text) {
    v1::SteeringMessage m;
    m.set_task_id(id);
    m.add_parts()->set_text(text);
    return client.send(m).outcome();
  };
  Probe p(nats.url());
  const tn::Names& names = b.transport().names();
  const auto echoes = [&](const std::string& text) {
    int n = 0;
    for (const auto& i : p.items_of(names, id)) {
      if (i.has_event() && i.event().has_message() && i.event().message().text() == text) ++n;
    }
    return n;
  };
  REQUIRE(send("before") == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(eventually([&] { return echoes("echo: before") == 1; }, 10s, kServerPoll));
  // A few more steps, each a checkpoint and a record write that carries the mark past "before".
  const double seen = client.status(id).progress().current();
  REQUIRE(eventually([&] { return client.status(id).progress().current() >= seen + 4; }, 10s, kServerPoll));
  a->crash();
  REQUIRE(eventually([&] { return client.status(id).worker_id() == "survivor"; }, 20s, kServerPoll));
  REQUIRE(send("after") == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(eventually([&] { return echoes("echo: after") == 1; }, 10s, kServerPoll));
  CHECK(echoes("echo: before") == 1);  // the re-attached attempt did not get it a second time
  v1::CancelRequest cancel;
  cancel.set_task_id(id);
  client.cancel(cancel);
}

TEST_CASE("on_receipt: an answer held for its question when the host dies is not skipped, nor the messages after it replayed") {
  NatsSingle nats;
  TempDir dir{"taskhost-nats-held"};
  const auto plugins = dir.path() / "plugins";
  std::filesystem::create_directories(plugins);
  std::filesystem::copy_file(std::filesystem::path(TASKHOST_FIXTURE_DIR) / "scripted-v1.so", plugins / "scripted.so");
  NatsTaskClient client(test_options(nats.url(), "client"));
  auto a = std::make_unique<HostRig>(test_options(nats.url(), "dies"), plugins);
  const std::string id = client.submit(assignment("held", "test.hold", R"("hold")"));
  REQUIRE(eventually([&] { return client.status(id).state() == v1::RUNNING; }, 10s, kServerPoll));
  const auto send = [&](const std::string& text, const std::string& in_reply_to = {}) {
    v1::SteeringMessage m;
    m.set_task_id(id);
    m.add_parts()->set_text(text);
    m.set_in_reply_to(in_reply_to);
    return client.send(m);
  };
  // The answer comes before its question: the router holds it. The messages after it are taken at once;
  // the second checkpoint is taken after the first message returned, so its mark is past the answer's.
  const v1::DeliveryReceipt held = send("blue", "q1");
  REQUIRE(held.outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(held.queued());
  REQUIRE(send("later").outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(send("ckpt:zero").outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(send("ckpt:one").outcome() == v1::DeliveryReceipt::ACCEPTED);
  Probe p(nats.url());
  const tn::Names names = a->transport().names();  // a copy: the transport goes with the crash
  REQUIRE(eventually([&] {
    const auto records = p.read_all(names.kv_stream(), names.kv_subject(tn::Names::task_key(id)));
    return !records.empty() && records.back().second.find("one") != std::string::npos;
  }, 10s, kServerPoll));

  a->crash();
  auto b = std::make_unique<HostRig>(test_options(nats.url(), "rescuer"), plugins);
  const auto said = [&](const std::string& worker, const std::string& prefix) {
    for (const auto& i : p.items_of(names, id)) {
      if (i.has_event() && i.event().has_message() && i.event().worker_id() == worker &&
          i.event().message().text().rfind(prefix, 0) == 0) {
        return i.event().message().text();
      }
    }
    return std::string();
  };
  const auto record_has = [&](const std::string& text) {
    const auto records = p.read_all(names.kv_stream(), names.kv_subject(tn::Names::task_key(id)));
    return !records.empty() && records.back().second.find(text) != std::string::npos;
  };
  REQUIRE(eventually([&] { return !said("rescuer", "resumed:").empty(); }, 20s, kServerPoll));
  CHECK(said("rescuer", "resumed:") == "resumed:one:attempt=2");

  SUBCASE("the resumed attempt asks") {
    // The answer the dead attempt never got is there for it.
    REQUIRE(send("ask").outcome() == v1::DeliveryReceipt::ACCEPTED);
    CHECK(eventually([&] { return said("rescuer", "answer:") == "answer:blue"; }, 10s, kServerPoll));
  }
  SUBCASE("the rescuer dies too, before the question: the third host still has the answer") {
    // The rescuer holds the answer again and records it as held with its own checkpoint.
    REQUIRE(send("ckpt:two").outcome() == v1::DeliveryReceipt::ACCEPTED);
    REQUIRE(eventually([&] { return record_has("two"); }, 10s, kServerPoll));
    b->crash();
    HostRig c(test_options(nats.url(), "third"), plugins);
    REQUIRE(eventually([&] { return !said("third", "resumed:").empty(); }, 20s, kServerPoll));
    CHECK(said("third", "resumed:") == "resumed:two:attempt=3");
    REQUIRE(send("ask").outcome() == v1::DeliveryReceipt::ACCEPTED);
    CHECK(eventually([&] { return said("third", "answer:") == "answer:blue"; }, 10s, kServerPoll));
    CHECK(said("third", "echo:later").empty());
  }
  // The message taken after the held answer, before the checkpoint, is not handed to a resumed attempt
  // again: the mark lists the held answer as the one exception below it. (By now the last host has
  // applied everything stored before "ask", in stream order.)
  CHECK(said("rescuer", "echo:later").empty());
  v1::CancelRequest cancel;
  cancel.set_task_id(id);
  client.cancel(cancel);
}

TEST_CASE("on_receipt: an answer taken after being held is not handed again to the re-attached attempt") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  auto a = std::make_unique<HostRig>(test_options(nats.url(), "dies"));
  const std::string id = client.submit(
      assignment("answered", "interactive.count", R"({"steps":60,"delay_ms":100,"ask":true,"ask_at":25})"));
  REQUIRE(eventually([&] { return client.status(id).state() == v1::RUNNING; }, 10s, kServerPoll));
  HostRig b(test_options(nats.url(), "rescuer"));
  // Sent before the task asks: held by the router, taken when it asks, and the last control message.
  v1::SteeringMessage answer;
  answer.set_task_id(id);
  answer.add_parts()->set_text("yes");
  answer.set_in_reply_to("confirm");
  const v1::DeliveryReceipt held = client.send(answer);
  REQUIRE(held.outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(held.queued());
  // Steps past the question, each a checkpoint recorded after the answer was taken.
  REQUIRE(eventually([&] { return client.status(id).progress().current() >= 29; }, 20s, kServerPoll));
  Probe p(nats.url());
  const tn::Names names = b.transport().names();
  a->crash();
  const auto c = client.wait(id, 30s);
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.worker_id() == "rescuer");
  CHECK(c.attempt() == 2);
  // Had the mark stayed below the answer, the rescuer would hand it to attempt 2, which resumed past the
  // question and never asks it: the task's events would say so as it ended.
  for (const auto& i : p.items_of(names, id)) {
    if (!i.has_event() || !i.event().has_state()) continue;
    CHECK_MESSAGE(i.event().state().detail().find("which the task did not ask for") == std::string::npos,
                  i.event().state().detail());
  }
}

TEST_CASE("on_receipt: an input answer sent while the task's host is dead reaches the re-attached attempt") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  auto a = std::make_unique<HostRig>(test_options(nats.url(), "dies"));
  const std::string id =
      client.submit(assignment("asked", "interactive.count", R"({"steps":6,"delay_ms":100,"ask":true,"ask_at":3})"));
  REQUIRE(eventually([&] {
    const auto s = client.status(id);
    return s.worker_id() == "dies" && s.state() == v1::WAITING_INPUT;
  }, 10s, kServerPoll));
  HostRig b(test_options(nats.url(), "rescuer"));
  a->crash();
  // Stored while nobody holds the task. The attempt that re-attaches resumes from the step before the
  // question and asks again; the answer, applied as it opens the task, must wait for that question
  // (refused as "not waiting for input", the task waited for an answer for ever).
  v1::SteeringMessage answer;
  answer.set_task_id(id);
  answer.add_parts()->set_text("yes");
  answer.set_in_reply_to("confirm");
  CHECK(client.send(answer).outcome() == v1::DeliveryReceipt::ACCEPTED);
  const auto c = client.wait(id, 30s);
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.worker_id() == "rescuer");
  CHECK(c.attempt() == 2);
}

namespace {
// A task handed back to its queue ran to the end on the host "counter", re-attached as attempt 2 from
// the checkpoint its dead host left (it had counted at least 2 steps).
void check_resumed_by_counter(NatsTaskClient& client, const std::string& id) {
  const auto done = client.wait(id, 30s);
  CHECK(done.state() == v1::SUCCEEDED);
  CHECK(done.worker_id() == "counter");
  CHECK(done.attempt() == 2);
  CHECK(done.output().struct_value().fields().at("resumed_from").number_value() >= 2);
}
}  // namespace

TEST_CASE("on_receipt: a dead host's task of a kind its rescuer does not serve goes to a host that does") {
  NatsSingle nats;
  TempDir only_hello;
  kinds_served(TASKHOST_PLUGIN_DIR, "hello-c.so", only_hello.path());
  NatsTaskClient client(test_options(nats.url(), "client"));
  // The survivor runs first: it learns of the other host from that host's beats, not from the keys it
  // found at its own start. It serves only hello.greet, so it wins the dead host's lease but cannot run
  // the task.
  HostRig b(test_options(nats.url(), "greeter"), only_hello.path());
  auto a = std::make_unique<HostRig>(test_options(nats.url(), "dies"));
  const auto a_started = std::chrono::steady_clock::now();
  const std::string id = client.submit(assignment("lost", "interactive.count", R"({"steps":150,"delay_ms":40})"));
  REQUIRE(eventually([&] { return client.status(id).progress().current() >= 2; }, 10s, kServerPoll));
  // Longer than host_dead_after: a survivor that had stopped following beats would have given up on it.
  std::this_thread::sleep_until(a_started + 3s);
  REQUIRE(client.status(id).state() == v1::RUNNING);
  CHECK(b.transport().stats().orphaned == 0);  // alive all along
  const tn::Names names = a->transport().names();
  a->crash();
  // Steering sent while no host holds the task: kept for whichever host resumes it.
  v1::SteeringMessage faster;
  faster.set_task_id(id);
  faster.add_parts()->set_text("faster");
  client.send(faster);
  // Not failed "orphaned" (as it was): handed back to its queue, where it waits for a host serving it.
  REQUIRE(eventually([&] { return b.transport().stats().handed_to_queue == 1; }, 20s, kServerPoll));
  CHECK(b.transport().stats().orphaned == 0);
  std::this_thread::sleep_for(500ms);
  CHECK_FALSE(client.status(id).has_completion());
  // A host that serves the kind arrives, takes it and re-attaches it from the dead host's checkpoint.
  HostRig c(test_options(nats.url(), "counter"));
  check_resumed_by_counter(client, id);
  CHECK(c.transport().stats().reattached == 1);
  // The steering sent while it waited reached the resumed attempt (it was stored before the hand-back).
  Probe p(nats.url());
  bool sped_up = false;
  for (const auto& i : p.items_of(names, id)) {
    if (i.has_event() && i.event().has_message() && i.event().worker_id() == "counter" &&
        i.event().message().text().rfind("faster:", 0) == 0)
      sped_up = true;
  }
  CHECK(sped_up);
}

TEST_CASE("on_receipt: a host restarted without a kind's plugin hands its own task back, and a capable host resumes it") {
  NatsSingle nats;
  TempDir only_hello;
  kinds_served(TASKHOST_PLUGIN_DIR, "hello-c.so", only_hello.path());
  NatsTaskClient client(test_options(nats.url(), "client"));
  auto a = std::make_unique<HostRig>(test_options(nats.url(), "w1"));
  const std::string id = client.submit(assignment("own", "interactive.count", R"({"steps":150,"delay_ms":40})"));
  REQUIRE(eventually([&] { return client.status(id).progress().current() >= 2; }, 10s, kServerPoll));
  a->crash();
  // The same worker id comes back, without the plugin: its start rescues its previous run's records.
  HostRig again(test_options(nats.url(), "w1"), only_hello.path());
  REQUIRE(eventually([&] { return again.transport().stats().handed_to_queue == 1; }, 20s, kServerPoll));
  // w1 is alive and serves hello.greet only; the record no longer names it, so the capable host does not
  // take the queued copy for a stale one.
  HostRig c(test_options(nats.url(), "counter"));
  check_resumed_by_counter(client, id);
}

TEST_CASE("on_completion: a dead host's task comes back by redelivery and resumes from its record") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "dies", AckMode::on_completion);
  NatsTaskClient client(o);
  auto a = std::make_unique<HostRig>(o);
  const std::string id = client.submit(assignment("redelivered", "interactive.count", R"({"steps":50,"delay_ms":40})"));
  REQUIRE(eventually([&] { return client.status(id).progress().current() >= 4; }, 10s, kServerPoll));
  a->crash();
  HostRig b(test_options(nats.url(), "next", AckMode::on_completion));
  const auto c = client.wait(id, 20s);
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.worker_id() == "next");
  CHECK(c.attempt() == 2);
  CHECK(number(c, "resumed_from") >= 4);
}

TEST_CASE("on_completion: redeliveries put off while the dead holder still looked alive do not poison its task") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "dies", AckMode::on_completion);
  o.ack_wait = 1s;  // a redelivery (and a nak_later) a second...
  o.max_deliver = 2;
  o.host_dead_after = 4s;  // ...for the seconds before the holder is proven dead
  NatsTaskClient client(o);
  auto a = std::make_unique<HostRig>(o);
  const std::string id = client.submit(assignment("put-off", "interactive.count", R"({"steps":150,"delay_ms":40})"));
  REQUIRE(eventually([&] { return client.status(id).progress().current() >= 4; }, 10s, kServerPoll));
  auto survivor_options = o;
  survivor_options.worker_id = "survivor";
  HostRig b(survivor_options);  // bound before the crash: it is offered every redelivery
  a->crash();
  const auto c = client.wait(id, 30s);
  CHECK(c.state() == v1::SUCCEEDED);  // re-attached once the holder was dead, not failed "poisoned"
  CHECK(c.worker_id() == "survivor");
  CHECK(c.attempt() == 2);
}

TEST_CASE("on_completion: a task delivered more than max_deliver times ends failed poisoned") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "w1", AckMode::on_completion);
  o.max_deliver = 2;
  NatsTaskClient client(o);
  const tn::Names names(o.stream_prefix, o.kv_bucket);
  Probe p(nats.url());
  tn::ensure_kind_consumer(p.js(), names, o, "hello.greet");
  client.submit(assignment("poison", "hello.greet", R"({"name":"x"})"));
  // Two hosts "died" holding it: fetch it and hand it back, twice.
  natsSubscription* sub = nullptr;
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = "T_TASKS";
  so.Consumer = names.consumer_name("hello.greet").c_str();
  const std::string consumer = names.consumer_name("hello.greet");
  so.Consumer = consumer.c_str();
  jsErrCode code = static_cast<jsErrCode>(0);
  REQUIRE(js_PullSubscribe(&sub, p.js(), names.task_subject("hello.greet").c_str(), consumer.c_str(), nullptr, &so,
                           &code) == NATS_OK);
  for (int i = 0; i < 2; ++i) {
    natsMsgList list;
    REQUIRE(natsSubscription_Fetch(&list, sub, 1, 5000, &code) == NATS_OK);
    REQUIRE(list.Count == 1);
    natsMsg_Nak(list.Msgs[0], nullptr);
    natsMsgList_Destroy(&list);
  }
  natsSubscription_Destroy(sub);
  HostRig host(o);
  const auto c = client.wait("poison", 10s);
  CHECK(c.state() == v1::FAILED);
  CHECK(c.error().kind() == "poisoned");
  CHECK(c.attempt() == 3);
  CHECK(c.error().message() == "task 'poison' was started 2 times without completing (max_deliver 2); attempt 3 is not started");
  // Its record goes with it: `status` lists unfinished tasks, and QA's poisoned task stayed listed (as
  // failed) for good, with its record in the bucket.
  tn::Connection connection(o, "record probe");
  const tn::RecordStore records(connection, names);
  CHECK(eventually([&] { return !records.task("poison"); }, 10s, kServerPoll));
  const auto listed = client.list();
  for (const auto& t : listed.tasks()) CHECK(t.task_id() != "poison");
}

TEST_CASE("drain lets running tasks finish and leaves the queued ones to the next host") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "leaving");
  NatsTaskClient client(o);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(client.submit(assignment("d-" + std::to_string(i), "interactive.count", R"({"steps":10,"delay_ms":50})")));
  }
  auto a = std::make_unique<HostRig>(o, TASKHOST_PLUGIN_DIR, 2);
  REQUIRE(eventually([&] { return a->host().router().active_count() == 2; }));
  a->shutdown(5s);
  int done = 0;
  for (const auto& id : ids) {
    const auto s = client.status(id);
    if (s.state() == v1::SUCCEEDED) ++done;
    CHECK((s.state() == v1::SUCCEEDED || s.state() == v1::PENDING));
  }
  CHECK(done >= 2);
  CHECK(done < 6);
  HostRig b(test_options(nats.url(), "next"));
  for (const auto& id : ids) CHECK(client.wait(id, 20s).state() == v1::SUCCEEDED);
  Probe p(nats.url());
  for (const auto& [id, cs] : p.completions(b.transport().names())) CHECK(cs.size() == 1);
}

TEST_CASE("the server restarts mid-run: hosts reconnect and no task is lost or completed twice") {
  NatsSingle nats;
  const int n = 1500;
  std::vector<v1::TaskAssignment> tasks;
  for (int i = 0; i < n; ++i) tasks.push_back(assignment("r-" + std::to_string(i), "interactive.echo", R"({"i":1})"));
  Probe p(nats.url());
  const tn::Names names("T", "t_tasks");
  std::map<std::string, std::vector<v1::TaskCompletion>> all;
  {
    HostRig a(test_options(nats.url(), "ra"), TASKHOST_PLUGIN_DIR, 32);
    HostRig b(test_options(nats.url(), "rb"), TASKHOST_PLUGIN_DIR, 32);
    p.publish_tasks(names, tasks);
    REQUIRE(eventually([&] { return a.transport().stats().completions + b.transport().stats().completions > 200; }));
    nats.server().kill();
    std::this_thread::sleep_for(500ms);
    nats.server().restart();
    Probe after(nats.url());
    CHECK(eventually([&] {
      all = after.completions(names);
      return all.size() == static_cast<size_t>(n);
    }, 60s, kServerPoll));
  }
  CHECK(all.size() == static_cast<size_t>(n));
  size_t twice = 0;
  for (const auto& [id, cs] : all) {
    if (cs.size() != 1) ++twice;
    CHECK(cs.front().state() == v1::SUCCEEDED);
  }
  CHECK(twice == 0);
}

TEST_CASE("finished tasks leave nothing in the KV bucket: records and their delete markers are compacted") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "w1");  // record_after 100 ms
  NatsTaskClient client(o);                 // submit() writes a queued record per task
  HostRig host(o);
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    // ≈200 ms with checkpoints: each gets an ownership record the host writes and rewrites.
    ids.push_back(client.submit(assignment("kv-" + std::to_string(i), "interactive.count", R"({"steps":4,"delay_ms":50})")));
  }
  for (const auto& id : ids) CHECK(client.wait(id, 20s).state() == v1::SUCCEEDED);
  Probe p(nats.url());
  const std::string kv_stream = host.transport().names().kv_stream();
  uint64_t msgs = 0, written = 0;
  // What stays is this host's own liveness key: one message, whatever number of tasks ran.
  CHECK(eventually([&] {
    jsStreamInfo* si = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, p.js(), kv_stream.c_str(), nullptr, &code) != NATS_OK) return false;
    msgs = si->State.Msgs;
    written = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return msgs <= 1;
  }, 10s, kServerPoll));
  CAPTURE(msgs);
  // Every task did use the bucket: a queued record, the host's record (and checkpoint rewrites), a delete.
  CHECK(written >= 3 * ids.size());
  CHECK(client.list().tasks_size() == 0);
}

TEST_CASE("discovery: every live host answers with its worker id and the kinds it has loaded") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  CHECK(client.discover(200ms).empty());  // nobody there yet: an empty answer, not an error

  TempDir only_hello("taskhost-nats-only-hello");
  kinds_served(TASKHOST_PLUGIN_DIR, "hello-c.so", only_hello.path());
  auto all = std::make_unique<HostRig>(test_options(nats.url(), "w-all"));
  HostRig hello(test_options(nats.url(), "w-hello"), only_hello.path());
  auto kinds_of = [](const v1::TaskCompletion& c) {
    std::vector<std::string> out;
    for (const auto& k : c.components().components()) out.push_back(k.component_id());
    return out;
  };
  // Asked until both answered: a loaded machine may answer after one round's wait, and that is not what
  // is under test (who answers, with what, is).
  std::vector<v1::TaskCompletion> answers;
  REQUIRE(eventually([&] { return (answers = client.discover(500ms)).size() == 2; }, 20s, kServerPoll));
  CHECK(answers[0].worker_id() == "w-all");
  CHECK(answers[0].state() == v1::SUCCEEDED);
  const auto all_kinds = kinds_of(answers[0]);
  for (const char* k : {"hello.greet", "hello.sum", "interactive.count", "interactive.echo"}) {
    CHECK_MESSAGE(std::find(all_kinds.begin(), all_kinds.end(), k) != all_kinds.end(), k);
  }
  CHECK(answers[1].worker_id() == "w-hello");
  CHECK(kinds_of(answers[1]) == std::vector<std::string>{"hello.greet", "hello.sum"});

  all.reset();  // a host that stopped no longer answers
  REQUIRE(eventually([&] { return (answers = client.discover(300ms)).size() == 1; }, 20s, kServerPoll));
  CHECK(answers[0].worker_id() == "w-hello");
}

TEST_CASE("a message over the server's max_payload is answered at once as permanent, not retried for ever") {
  TempDir dir{"taskhost-nats-payload"};
  NatsServer::Options so;
  so.work_dir = dir.path() / "nats";
  so.extra_config = "max_payload: 65536\n";
  NatsServer server(so);
  const NatsOptions o = test_options(server.url(), "publisher");
  const tn::Names names(o.stream_prefix, o.kv_bucket);
  tn::Connection connection(o, "publisher test");
  tn::ensure_streams(connection.js(), names, o);
  tn::AsyncPublisher publisher(connection);
  std::promise<tn::PublishResult> answered;
  publisher.publish(names.completion_subject("big"), std::string(100'000, 'x'), {}, {}, tn::Expect::none(),
                    [&](const tn::PublishResult& r) { answered.set_value(r); });
  auto answer = answered.get_future();
  REQUIRE(answer.wait_for(10s) == std::future_status::ready);
  const tn::PublishResult r = answer.get();
  CHECK_FALSE(r.stored);
  CHECK(r.permanent);
  CHECK(r.error.find("100000 bytes is more than the server's max_payload (65536 bytes)") != std::string::npos);
  CHECK(publisher.flush(5s));  // nothing left retrying: a drain is not held up
}

TEST_CASE("a busy kind's long pull leaves room for other kinds: their tasks do not wait for it to expire") {
  NatsSingle nats;
  auto o = test_options(nats.url(), "w1");
  o.pull_expiry = 60s;  // a busy kind's request waits this long at the server for more of its tasks
  NatsTaskClient client(o);
  HostRig host(o);
  const std::string busy = client.submit(assignment("long", "interactive.count", R"({"steps":400,"delay_ms":50})"));
  REQUIRE(eventually([&] { return client.status(busy).progress().current() >= 2; }, 10s, kServerPoll));
  // interactive.count now has a request out for every slot but the ones left to idle kinds.
  const std::string quick = client.submit(assignment("quick", "hello.greet", R"({"name":"Ada"})"));
  // Well inside the 60 s the busy kind's request may wait: under TSan on a loaded 2-core machine the
  // quick task once took longer than 10 s.
  const auto c = client.wait(quick, 30s);
  CHECK(c.state() == v1::SUCCEEDED);
  v1::CancelRequest cancel;
  cancel.set_task_id(busy);
  client.cancel(cancel);
}

TEST_CASE("an assignment published on one kind's subject but naming another kind fails, and does not run") {
  NatsSingle nats;
  const auto o = test_options(nats.url(), "w1");
  NatsTaskClient client(o);
  HostRig host(o);
  Probe p(nats.url());
  const tn::Names& names = host.transport().names();
  tn::ensure_kind_consumer(p.js(), names, o, "hello.greet");
  const std::string bytes = assignment("smuggled", "interactive.count", R"({"steps":1000,"delay_ms":1000})").SerializeAsString();
  jsErrCode code = static_cast<jsErrCode>(0);
  REQUIRE(js_Publish(nullptr, p.js(), names.task_subject("hello.greet").c_str(), bytes.data(),
                     static_cast<int>(bytes.size()), nullptr, &code) == NATS_OK);
  // Published raw, with no queued record: the task is known once its completion is stored.
  v1::TaskCompletion c;
  REQUIRE(eventually([&] {
    try {
      c = client.wait("smuggled", 1s);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }, 10s, kServerPoll));
  CHECK(c.state() == v1::FAILED);
  CHECK(c.error().code() == v1::INVALID_INPUT);
  CHECK(c.error().message().find("queued on the subject of kind 'hello.greet' but its assignment names kind "
                                 "'interactive.count'") != std::string::npos);
  CHECK(host.host().router().active_count() == 0);  // never started
}

TEST_CASE("a task's status read while it ends is its running or ended state, never 'unknown task'") {
  // The host stores the completion, then deletes the record. A reader that looked for the completion
  // first and the record second could fall between the two and find neither (a short task's events
  // travel with its completion): the CLI's `wait` then failed with "unknown task".
  NatsSingle nats;
  HostRig host(test_options(nats.url(), "w1"));
  NatsTaskClient client(test_options(nats.url(), "client"));
  constexpr int kTasks = 600;
  int unknown = 0;
  std::string first_error;
  for (int i = 0; i < kTasks; ++i) {
    const std::string id = "ending-" + std::to_string(i);
    client.submit(assignment(id, "hello.greet", R"({"name":"Ada"})"));
    for (;;) {
      try {
        if (client.status(id).has_completion()) break;
      } catch (const transport::ClientError& e) {
        if (unknown++ == 0) first_error = e.what();
        break;
      }
    }
  }
  CHECK_MESSAGE(unknown == 0, unknown << " of " << kTasks << " reads found no task, first: " << first_error);
}

TEST_CASE("cancel of a task still queued ends it at once; a host that takes it later lets it go unrun") {
  NatsSingle nats;
  TempDir only_hello;
  kinds_served(TASKHOST_PLUGIN_DIR, "hello-c.so", only_hello.path());
  NatsTaskClient client(test_options(nats.url(), "client"));
  auto greeter = std::make_unique<HostRig>(test_options(nats.url(), "greeter"), only_hello.path());
  // No live host serves interactive.count: the task waits in the queue.
  const std::string id = client.submit(assignment("queued-1", "interactive.count", R"({"steps":3,"delay_ms":10})"));
  CHECK(client.status(id).state() == v1::PENDING);
  v1::CancelRequest cancel;
  cancel.set_task_id(id);
  cancel.set_reason("not needed any more");
  const auto receipt = client.cancel(cancel);
  CHECK_MESSAGE(receipt.outcome() == v1::DeliveryReceipt::ACCEPTED, receipt.detail());
  CHECK(receipt.detail().find("canceled before any host started it") != std::string::npos);
  // Ended now, without a host: the completion is stored, and says why.
  const auto c = client.wait(id, 5s);
  CHECK(c.state() == v1::CANCELED);
  CHECK(c.error().code() == v1::CANCELLED);
  CHECK(c.error().message() == "not needed any more");
  CHECK(client.status(id).state() == v1::CANCELED);
  CHECK(client.cancel(cancel).outcome() == v1::DeliveryReceipt::TASK_ENDED);

  // A host that serves the kind arrives and takes the queued message: it lets the task go (the record
  // says canceled), leaves its one terminal record alone, and removes the record.
  HostRig counter(test_options(nats.url(), "counter"));
  Probe p(nats.url());
  const tn::Names& n = counter.transport().names();
  CHECK(eventually([&] {
    jsConsumerInfo* ci = p.consumer(n.tasks_stream(), n.consumer_name("interactive.count"));
    const bool consumed = ci != nullptr && ci->NumAckPending == 0 && ci->NumPending == 0 && ci->Delivered.Stream > 0;
    jsConsumerInfo_Destroy(ci);
    return consumed;
  }, 10s, kServerPoll));
  CHECK(eventually([&] { return client.list().tasks_size() == 0; }, 10s, kServerPoll));
  const auto after = client.status(id);
  CHECK(after.state() == v1::CANCELED);
  CHECK(after.completion().error().message() == "not needed any more");
  CHECK(after.worker_id().empty());
}

TEST_CASE("submitting the id of a task a host is running is that task: its id, and its one result") {
  NatsSingle nats;
  HostRig host(test_options(nats.url(), "w1"));
  NatsTaskClient client(test_options(nats.url(), "client"));
  const auto task = assignment("running-twice", "interactive.count", R"({"steps":20,"delay_ms":50})");
  const std::string id = client.submit(task);
  REQUIRE(eventually([&] { return !client.status(id).worker_id().empty(); }, 10s, kServerPoll));
  CHECK(client.submit(task) == id);  // was: "task 'running-twice' is running on w1", an error
  const auto c = client.wait(id, 20s);
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.attempt() == 1);
  // The host counts a completion once its store is acknowledged, which can come after the client sees it.
  CHECK(eventually([&] { return host.transport().stats().completions == 1; }, 5s, kServerPoll));
}

TEST_CASE("a steering message sent again with the same id is stored once and answered as already sent") {
  NatsSingle nats;
  HostRig host(test_options(nats.url(), "w1"));
  NatsTaskClient client(test_options(nats.url(), "client"));
  const std::string id = client.submit(assignment("steered-once", "interactive.count", R"({"steps":40,"delay_ms":50})"));
  REQUIRE(eventually([&] { return client.status(id).state() == v1::RUNNING; }, 10s, kServerPoll));
  v1::SteeringMessage m;
  m.set_task_id(id);
  m.set_message_id("m-fixed");
  m.add_parts()->set_text("faster");
  const auto first = client.send(m);
  CHECK_MESSAGE(first.outcome() == v1::DeliveryReceipt::ACCEPTED, first.detail());
  const auto again = client.send(m);  // a retry: was applied a second time (the delay halved twice)
  CHECK(again.outcome() == v1::DeliveryReceipt::REJECTED);
  CHECK(again.detail() == "message 'm-fixed' was already sent");
  m.set_message_id("m-other");
  CHECK(client.send(m).outcome() == v1::DeliveryReceipt::ACCEPTED);
  Probe p(nats.url());
  const tn::Names& names = host.transport().names();
  const auto faster = [&] {
    int n = 0;
    for (const auto& i : p.items_of(names, id)) {
      if (i.has_event() && i.event().has_message() && i.event().message().text().rfind("faster:", 0) == 0) ++n;
    }
    return n;
  };
  CHECK(eventually([&] { return faster() == 2; }, 10s, kServerPoll));
  std::this_thread::sleep_for(300ms);
  CHECK(faster() == 2);
  v1::CancelRequest cancel;
  cancel.set_task_id(id);
  client.cancel(cancel);
}

TEST_CASE("an assignment that leaves its record no room in the server's max_payload is refused at submit") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  // 1 MiB is the server's default max_payload: the assignment alone would fit, its record would not.
  const std::string pad(1024 * 1024 - 8 * 1024, 'x');
  try {
    client.submit(assignment("too-big", "interactive.count", R"({"steps":1,"pad":")" + pad + R"("})"));
    FAIL("submitted");
  } catch (const transport::ClientError& e) {
    const std::string what = e.what();
    CHECK_MESSAGE(what.find("submit: task 'too-big' is ") != std::string::npos, what);
    CHECK_MESSAGE(what.find("the server's max_payload is 1048576 bytes") != std::string::npos, what);
  }
  CHECK_THROWS_AS(client.status("too-big"), transport::ClientError);  // nothing was queued
  // Within the room it is queued as usual.
  const std::string fits(512 * 1024, 'x');
  CHECK(client.submit(assignment("fits", "interactive.count", R"({"steps":1,"pad":")" + fits + R"("})")) == "fits");
}

TEST_CASE("status lists tasks oldest submission first, whatever changed their records since") {
  NatsSingle nats;
  NatsTaskClient client(test_options(nats.url(), "client"));
  // No host: they stay queued. The cancel rewrites order-2's record, which the bucket then lists last.
  for (int i = 1; i <= 4; ++i) {
    client.submit(assignment("order-" + std::to_string(i), "interactive.count", R"({"steps":1})"));
    std::this_thread::sleep_for(5ms);  // distinct submit times
  }
  v1::CancelRequest cancel;
  cancel.set_task_id("order-2");
  REQUIRE(client.cancel(cancel).outcome() == v1::DeliveryReceipt::ACCEPTED);
  std::vector<std::string> listed;
  const auto list = client.list();
  for (const auto& t : list.tasks()) listed.push_back(t.task_id());
  CHECK(listed == std::vector<std::string>{"order-1", "order-2", "order-3", "order-4"});
}
