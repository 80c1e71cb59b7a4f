// Faults with real processes: `taskhost serve --transport nats` hosts (TASKHOST_BIN_DIR) sharing work
// through a real nats-server or a 3-node cluster; a host is SIGKILLed, a server restarts, and afterwards
// the events stream must hold exactly one terminal record for every task.
#include "nats_server.hpp"
#include "rig.hpp"
#include "transport/nats/connection.hpp"
#include "transport/nats/control_channel.hpp"
#include "transport/nats/record_store.hpp"

#include <doctest/doctest.h>

#include <fmt/format.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

using namespace taskhost;
using namespace taskhost::testing;
namespace tn = taskhost::transport::nats;

namespace {

// The hosts a test crashes on purpose write no core files into the build tree.
const bool no_core_files = [] {
  const rlimit none{0, 0};
  return ::setrlimit(RLIMIT_CORE, &none) == 0;
}();

struct HostSpec {
  std::string worker;
  std::string url;
  std::string ack_mode = "on_receipt";
  size_t max_active = 64;
  std::vector<std::string> env = {};  // NAME=value, e.g. TASKHOST_FAILPOINTS (common/failpoint.hpp)
  std::string plugins_dir = TASKHOST_PLUGIN_DIR;
  uint32_t max_deliver = 10;
  std::string state_dir = {};  // empty: none (a NATS host then keeps no crash ledger)
  int drain_grace_ms = 5000;
};

// One `taskhost serve --transport nats` process with a config written for it.
class HostProcess {
 public:
  HostProcess(const TempDir& dir, const HostSpec& spec) : worker_(spec.worker), log_(dir.path() / (spec.worker + ".log")) {
    const auto conf = dir.path() / (spec.worker + ".toml");
    std::ofstream out(conf);
    if (!spec.state_dir.empty()) out << fmt::format("state_dir = \"{}\"\n", spec.state_dir);
    out << fmt::format(R"(transport = "nats"
plugins_dir = "{}"
worker_id = "{}"
[limits]
max_active = {}
[tasks]
drain_grace_ms = {}
cancel_deadline_ms = 2000
[nats]
url = "{}"
ack_mode = "{}"
stream_prefix = "F"
kv_bucket = "f_tasks"
ack_wait_secs = 3
host_dead_after_secs = 2
max_deliver = {}
)",
                       spec.plugins_dir, spec.worker, spec.max_active, spec.drain_grace_ms, spec.url, spec.ack_mode,
                       spec.max_deliver);
    out.close();
    process_ = std::make_unique<Subprocess>(
        std::vector<std::string>{std::string(TASKHOST_BIN_DIR) + "/taskhost", "serve", "--config", conf.string()}, log_,
        spec.env);
  }
  Subprocess& process() { return *process_; }
  const std::string& worker() const { return worker_; }
  std::string log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Waits until the host logs that it pulls.
  bool wait_ready(std::chrono::milliseconds timeout = 20s) {
    return eventually([&] { return log().find("pulling") != std::string::npos; }, timeout, kServerPoll);
  }

 private:
  std::string worker_;
  std::filesystem::path log_;
  std::unique_ptr<Subprocess> process_;
};

// A plugins directory of the test's own holding only the scripted fixture (scripted.so), for hosts that
// crash on purpose.
std::filesystem::path scripted_plugins_dir(const TempDir& dir) {
  const auto plugins = dir.path() / "plugins";
  std::filesystem::create_directories(plugins);
  std::filesystem::copy_file(std::filesystem::path(TASKHOST_FIXTURE_DIR) / "scripted-v1.so", plugins / "scripted.so");
  return plugins;
}

// The warnings every host logged ("worker: line"), for a failure message: what a host decided, and why.
std::string host_warnings(const std::vector<std::unique_ptr<HostProcess>>& hosts) {
  std::string out;
  for (const auto& h : hosts) {
    std::istringstream in(h->log());
    for (std::string line; std::getline(in, line);) {
      if (line.find("WARN") != std::string::npos || line.find("rescu") != std::string::npos ||
          line.find("re-attach") != std::string::npos) {
        out += h->worker() + ": " + line + "\n";
      }
    }
  }
  return out;
}

std::vector<v1::TaskAssignment> echo_tasks(const std::string& prefix, int n) {
  std::vector<v1::TaskAssignment> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(assignment(prefix + std::to_string(i), "interactive.echo", R"({"n":1})"));
  return out;
}

struct Tally {
  size_t tasks = 0;        // distinct tasks with a terminal record
  size_t twice = 0;        // tasks with more than one
  size_t not_succeeded = 0;
  size_t retried = 0;      // ended by a later attempt than the first (redelivered or re-attached)
  std::string first_failures;  // what the first few not-succeeded tasks ended with, for the failure message
};

// Which subjects hold a completion, and how many, from the stream's own state; each completion read
// with a get answered by the stream's leader. Not by walking the stream with direct gets: any replica
// answers those, and one still catching up after its node restarted was seen to answer a walk with
// some completions twice and others not at all.
Tally tally(Probe& p, const tn::Names& names) {
  Tally t;
  for (const auto& [subject, msgs] : p.subject_counts(names.events_stream(), names.prefix() + ".events.*.completion")) {
    ++t.tasks;
    if (msgs != 1) ++t.twice;
    natsMsg* m = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (js_GetLastMsg(&m, p.js(), names.events_stream().c_str(), subject.c_str(), nullptr, &code) != NATS_OK) {
      return Tally{};  // the leader is moving: read again
    }
    const auto items = tn::decode_items(std::string_view(natsMsg_GetData(m) ? natsMsg_GetData(m) : "",
                                                         static_cast<size_t>(natsMsg_GetDataLength(m))));
    natsMsg_Destroy(m);
    REQUIRE_MESSAGE((items && !items->empty() && items->back().has_completion()), "malformed completion on ", subject);
    const auto& c = items->back().completion();
    if (c.state() != v1::SUCCEEDED && ++t.not_succeeded <= 3) {
      t.first_failures += fmt::format("\n  {} attempt {} on {}: {} {} '{}'", c.task_id(), c.attempt(), c.worker_id(),
                                      v1::TaskState_Name(c.state()), c.error().kind(), c.error().message());
    }
    if (c.attempt() > 1) ++t.retried;
  }
  return t;
}

// A client of the hosts these tests start (their stream prefix and bucket).
NatsOptions client_options(const std::string& url) {
  auto o = test_options(url, "client");
  o.stream_prefix = "F";
  o.kv_bucket = "f_tasks";
  return o;
}

// Submits n interactive.count tasks long-0 … long-<n-1> with `input`; their ids.
std::vector<std::string> submit_counting(NatsTaskClient& client, int n, const std::string& input) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    ids.push_back(client.submit(assignment("long-" + std::to_string(i), "interactive.count", input)));
  }
  return ids;
}

// Tasks with a stored completion, counted from the events stream's own per-subject state (one
// completion subject per task): cheap to poll, and it keeps working while a cluster node restarts,
// where a tally() per poll (a new ordered consumer each time) came back short for minutes.
struct Done {
  size_t tasks = 0;  // completion subjects holding a message
  size_t twice = 0;  // ... holding more than one
};

Done done(Probe& p, const tn::Names& names) {
  Done d;
  for (const auto& [subject, msgs] : p.subject_counts(names.events_stream(), names.prefix() + ".events.*.completion")) {
    ++d.tasks;
    if (msgs > 1) ++d.twice;
  }
  return d;
}

// How many messages `stream` holds (0 when the request fails): one request, no per-subject list.
uint64_t stored_messages(Probe& p, const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, p.js(), stream.c_str(), nullptr, &code) != NATS_OK) return 0;
  const uint64_t msgs = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return msgs;
}

// Polls until every one of the n tasks has a completion; false (with the count in the report) if not.
bool all_done(Probe& p, const tn::Names& names, int n, std::chrono::seconds timeout) {
  Done d;
  const bool all = eventually([&] {
    d = done(p, names);
    return d.tasks == static_cast<size_t>(n);
  }, timeout, kServerPoll);
  CHECK_MESSAGE(all, fmt::format("{} of {} tasks have a completion ({} more than one)", d.tasks, n, d.twice));
  return all;
}

// The control stream's state and its consumers (each host's), for a failure message.
std::string control_consumers(Probe& p, const tn::Names& names) {
  std::string out;
  jsErrCode code = static_cast<jsErrCode>(0);
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, p.js(), names.control_stream().c_str(), nullptr, &code) == NATS_OK) {
    out += fmt::format("{}: {} messages, first seq {}, last seq {}, {} deleted, leader {}\n", names.control_stream(),
                       si->State.Msgs, si->State.FirstSeq, si->State.LastSeq, si->State.NumDeleted,
                       si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "-");
    for (uint64_t seq = si->State.FirstSeq; seq <= si->State.LastSeq && seq < si->State.FirstSeq + 50; ++seq) {
      natsMsg* m = nullptr;
      const natsStatus s = js_GetMsg(&m, p.js(), names.control_stream().c_str(), seq, nullptr, &code);
      out += fmt::format("  seq {}: {}\n", seq, s == NATS_OK ? natsMsg_GetSubject(m) : natsStatus_GetText(s));
      if (m != nullptr) natsMsg_Destroy(m);
    }
    jsStreamInfo_Destroy(si);
  }
  jsConsumerInfoList* list = nullptr;
  if (js_Consumers(&list, p.js(), names.control_stream().c_str(), nullptr, &code) == NATS_OK) {
    for (int i = 0; i < list->Count; ++i) {
      const jsConsumerInfo* c = list->List[i];
      out += fmt::format("  consumer {}: delivered {} pending {} leader {}\n", c->Name, c->Delivered.Stream,
                         c->NumPending, c->Cluster && c->Cluster->Leader ? c->Cluster->Leader : "-");
    }
    jsConsumerInfoList_Destroy(list);
  }
  return out;
}

// The highest stream sequence any consumer of the control stream has been sent (0 if none).
uint64_t control_delivered_through(Probe& p, const tn::Names& names) {
  uint64_t through = 0;
  jsErrCode code = static_cast<jsErrCode>(0);
  jsConsumerInfoList* list = nullptr;
  if (js_Consumers(&list, p.js(), names.control_stream().c_str(), nullptr, &code) == NATS_OK) {
    for (int i = 0; i < list->Count; ++i) through = std::max(through, list->List[i]->Delivered.Stream);
    jsConsumerInfoList_Destroy(list);
  }
  return through;
}

// A steering message for `task_id` carrying `text` (its message id derived from the text).
v1::SteeringMessage steering(const std::string& task_id, const std::string& text) {
  v1::SteeringMessage m;
  m.set_task_id(task_id);
  m.set_message_id("m-" + text);
  m.add_parts()->set_text(text);
  return m;
}

// Stops a host with SIGTERM and checks it drains and exits 0 in time.
void stop_cleanly(HostProcess& h) {
  h.process().signal(SIGTERM);
  const int st = h.process().wait(20s);
  CHECK_MESSAGE(st != -1, "host did not exit within 20 s of SIGTERM");
  if (st != -1) {
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
  }
}

// Nothing waits in the work queue and no delivery is unacked. Deliveries the killed host held (tasks
// it finished but never acked, or never got to) are redelivered after ack_wait and answered by a
// survivor, so this may take one ack_wait.
void check_queue_drained(Probe& p, const tn::Names& names) {
  int64_t pending = -1, unacked = -1;
  CHECK(eventually([&] {
    jsConsumerInfo* ci = p.consumer(names.tasks_stream(), names.consumer_name("interactive.echo"));
    if (ci == nullptr) return false;
    pending = static_cast<int64_t>(ci->NumPending);
    unacked = ci->NumAckPending;
    jsConsumerInfo_Destroy(ci);
    return pending == 0 && unacked == 0;
  }, 15s, kServerPoll));
  CHECK(pending == 0);
  CHECK(unacked == 0);
}

// Every task ended exactly once, and successfully, and the queue is empty; `t` gets the stream's contents.
// Read until complete: right after a node's restart the stream's state can come back short.
void check_each_done_once(Probe& p, const tn::Names& names, int n, Tally& t) {
  CHECK(eventually([&] {
    t = tally(p, names);
    return t.tasks == static_cast<size_t>(n);
  }, 30s, kServerPoll));
  CHECK(t.tasks == static_cast<size_t>(n));
  CHECK(t.twice == 0);
  CHECK_MESSAGE(t.not_succeeded == 0, t.first_failures);
  check_queue_drained(p, names);
  // Redelivered leftovers were recognised as done, not run again: counted again once the hosts settled.
  // (One read can meet the stream's leader change after a node's restart and come back empty: polled.)
  Done again;
  CHECK(eventually([&] {
    again = done(p, names);
    return again.tasks == static_cast<size_t>(n);
  }, 15s, kServerPoll));
  CHECK(again.twice == 0);
}

void kill_one_host_mid_run(const std::string& ack_mode, int n) {
  NatsSingle nats;
  TempDir dir("taskhost-nats-fault");
  const tn::Names names("F", "f_tasks");
  std::vector<std::unique_ptr<HostProcess>> hosts;
  for (int i = 1; i <= 3; ++i) {
    hosts.push_back(std::make_unique<HostProcess>(dir, HostSpec{"h" + std::to_string(i), nats.url(), ack_mode}));
  }
  for (auto& h : hosts) REQUIRE_MESSAGE(h->wait_ready(), h->log());

  Probe p(nats.url());
  const auto start = std::chrono::steady_clock::now();
  // Half the tasks first, the other half once a host is dead, so the kill lands mid-run however fast
  // the hosts are: a run of all 10,000 at once ended between two counts (one count reads every
  // completion subject) and the host was killed after the last task.
  const std::vector<v1::TaskAssignment> tasks = echo_tasks("k-", n);
  const auto second_half = tasks.begin() + n / 2;
  p.publish_tasks(names, {tasks.begin(), second_half});
  // Mid-run: about a third of the work done, judged by the events stream's message count (about one
  // stored message per finished task): one cheap request, polled often, where done() is too slow to
  // notice a third before the half is over.
  REQUIRE(eventually([&] { return stored_messages(p, names.events_stream()) >= static_cast<uint64_t>(n / 3); }, 60s,
                     5ms));
  hosts[1]->process().kill_now();
  const size_t at_kill = done(p, names).tasks;
  p.publish_tasks(names, {second_half, tasks.end()});

  all_done(p, names, n, 60s);
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Tally t;
  check_each_done_once(p, names, n, t);
  if (t.not_succeeded != 0 || t.twice != 0) MESSAGE(host_warnings(hosts));
  MESSAGE(fmt::format("{} tasks ({}) through 3 hosts, one SIGKILLed at {} done: {:.1f} s, {} finished by a later attempt",
                      n, ack_mode, at_kill, seconds, t.retried));
  stop_cleanly(*hosts[0]);
  stop_cleanly(*hosts[2]);
}

}  // namespace

TEST_CASE("3 hosts, 10,000 tasks, one host SIGKILLed mid-run: one terminal record per task (on_receipt)") {
  kill_one_host_mid_run("on_receipt", 10'000);
}

TEST_CASE("3 hosts, one host SIGKILLed mid-run: one terminal record per task (on_completion)") {
  kill_one_host_mid_run("on_completion", 3'000);
}

TEST_CASE("a cluster node restarts mid-run: hosts fail over and no task is lost or doubled") {
  NatsCluster cluster(3);
  TempDir dir("taskhost-nats-fault");
  const tn::Names names("F", "f_tasks");
  const int n = 3'000;
  std::vector<std::unique_ptr<HostProcess>> hosts;
  for (int i = 1; i <= 3; ++i) {
    hosts.push_back(std::make_unique<HostProcess>(dir, HostSpec{"c" + std::to_string(i), cluster.urls()}));
  }
  for (auto& h : hosts) REQUIRE_MESSAGE(h->wait_ready(30s), h->log());

  Probe p(cluster.node(0).url());
  {
    // Replicated on all three nodes, so a node may go away.
    jsStreamInfo* si = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    REQUIRE(js_GetStreamInfo(&si, p.js(), names.tasks_stream().c_str(), nullptr, &code) == NATS_OK);
    CHECK(si->Config->Replicas == 3);
    jsStreamInfo_Destroy(si);
  }
  p.publish_tasks(names, echo_tasks("c-", n));
  REQUIRE(eventually([&] { return done(p, names).tasks >= static_cast<size_t>(n / 4); }, 60s, kServerPoll));
  cluster.node(1).kill();
  std::this_thread::sleep_for(1s);
  cluster.node(1).restart();
  all_done(p, names, n, 90s);
  Tally t;
  check_each_done_once(p, names, n, t);
  if (t.not_succeeded != 0 || t.twice != 0) MESSAGE(host_warnings(hosts));
  for (auto& h : hosts) stop_cleanly(*h);
}

namespace {

// A host "dies" on its own server running three recorded interactive.count tasks (a checkpoint stored),
// for the rescue tests: the rescuers start after, so none of them could have pulled the tasks.
struct DyingHost {
  NatsSingle nats;
  TempDir dir{"taskhost-nats-fault"};
  std::unique_ptr<HostProcess> host = std::make_unique<HostProcess>(dir, HostSpec{"dies", nats.url()});
  NatsTaskClient client{client_options(nats.url())};
  std::vector<std::string> ids;

  explicit DyingHost(const std::string& input) {
    REQUIRE_MESSAGE(host->wait_ready(), host->log());
    ids = submit_counting(client, 3, input);
    REQUIRE(eventually([&] {
      for (const auto& id : ids) {
        const auto s = client.status(id);
        if (s.worker_id() != "dies" || s.progress().current() < 10) return false;
      }
      return true;
    }, 20s, kServerPoll));
  }
  // Every task succeeded on `worker`, re-attached there as attempt 2.
  void check_rescued_by(const std::string& worker) {
    for (const auto& id : ids) {
      const auto c = client.wait(id, 30s);
      CHECK_MESSAGE(c.state() == v1::SUCCEEDED, id, ": ", c.error().message());
      CHECK(c.worker_id() == worker);
      CHECK(c.attempt() == 2);
    }
  }
};

}  // namespace

TEST_CASE("a rescue cut short is tried again: the dead host's recorded tasks are still re-attached") {
  // Only the host that wins a dead host's key rescues its tasks, so a listing of its records that
  // ends early (a watcher timeout in a leader election; here the failpoint) must not be the last try.
  DyingHost d(R"({"steps":200,"delay_ms":25})");
  HostProcess rescuer(d.dir, HostSpec{"rescuer", d.nats.url(), "on_receipt", 64,
                                      {"TASKHOST_FAILPOINTS=nats.rescue.cut_listing=1"}});
  REQUIRE_MESSAGE(rescuer.wait_ready(), rescuer.log());
  d.host->process().kill_now();

  d.check_rescued_by("rescuer");
  const std::string log = rescuer.log();
  CHECK_MESSAGE(log.find("rescue of dies cut short") != std::string::npos, log);  // the failpoint did fire
  stop_cleanly(rescuer);
}

TEST_CASE("a host that leaves before finishing a rescue lets its lease fall silent; another rescues it") {
  // The rescuer's listings are always cut short (failpoint), so it is still trying when it is told to
  // stop. It stops renewing its lease on the dead host's key, and a host that comes later finds the key
  // silent and rescues the tasks.
  DyingHost d(R"({"steps":400,"delay_ms":25})");
  HostProcess leaves(d.dir, HostSpec{"leaves", d.nats.url(), "on_receipt", 64,
                                     {"TASKHOST_FAILPOINTS=nats.rescue.cut_listing=100000"}});
  REQUIRE_MESSAGE(leaves.wait_ready(), leaves.log());
  d.host->process().kill_now();
  REQUIRE_MESSAGE(eventually([&] { return leaves.log().find("rescue of dies cut short") != std::string::npos; }, 20s,
                             kServerPoll),
                  leaves.log());
  stop_cleanly(leaves);
  CHECK_MESSAGE(leaves.log().find("leaving the rescue of dies to another host") != std::string::npos, leaves.log());

  HostProcess next(d.dir, HostSpec{"next", d.nats.url()});
  REQUIRE_MESSAGE(next.wait_ready(), next.log());
  d.check_rescued_by("next");
  stop_cleanly(next);
}

TEST_CASE("a rescuer SIGKILLed mid-rescue: another host rescues both what it took and what it left") {
  // The rescuer takes one record of the dead host over and dies at once (failpoint), the other two still
  // under the dead host's name. Its lease on the dead host's key falls silent like its own key, so the
  // next host rescues the task it took (attempt 3) and the two it left (attempt 2).
  DyingHost d(R"({"steps":400,"delay_ms":25})");
  HostProcess rescuer(d.dir, HostSpec{"rescuer", d.nats.url(), "on_receipt", 64,
                                      {"TASKHOST_FAILPOINTS=nats.rescue.die_after_take=1"}});
  REQUIRE_MESSAGE(rescuer.wait_ready(), rescuer.log());
  d.host->process().kill_now();
  REQUIRE_MESSAGE(eventually([&] { return !rescuer.process().running(); }, 30s, kServerPoll), rescuer.log());
  int taken = 0;
  for (const auto& id : d.ids) taken += d.client.status(id).worker_id() == "rescuer" ? 1 : 0;
  CHECK_MESSAGE(taken == 1, rescuer.log());

  HostProcess next(d.dir, HostSpec{"next", d.nats.url()});
  REQUIRE_MESSAGE(next.wait_ready(), next.log());
  int third_attempts = 0;
  for (const auto& id : d.ids) {
    const auto c = d.client.wait(id, 30s);
    CHECK_MESSAGE(c.state() == v1::SUCCEEDED, id, ": ", c.error().message(), "\n", next.log());
    CHECK(c.worker_id() == "next");
    third_attempts += c.attempt() == 3 ? 1 : 0;
  }
  CHECK(third_attempts == 1);
  stop_cleanly(next);
}

TEST_CASE("after a cluster node restarts, a cancel still reaches the long tasks on every host") {
  // Steering and cancel reach a host through its ordered consumer on the control stream. A node's
  // restart makes the hosts that were connected to it reconnect and their consumers be recreated (and
  // moves whatever that node led); a host whose control consumer did not recover would run these
  // tasks to their end (about 40 s) instead.
  NatsCluster cluster(3);
  TempDir dir("taskhost-nats-fault");
  std::vector<std::unique_ptr<HostProcess>> hosts;
  for (int i = 1; i <= 3; ++i) {
    HostSpec spec{"r" + std::to_string(i), cluster.urls()};
    spec.max_active = 2;  // six tasks are then spread over all three hosts
    hosts.push_back(std::make_unique<HostProcess>(dir, spec));
  }
  for (auto& h : hosts) REQUIRE_MESSAGE(h->wait_ready(30s), h->log());
  NatsTaskClient client(client_options(cluster.urls()));
  const std::vector<std::string> ids = submit_counting(client, 6, R"({"steps":2000,"delay_ms":20})");
  std::set<std::string> holders;
  REQUIRE(eventually([&] {
    holders.clear();
    for (const auto& id : ids) {
      const auto s = client.status(id);
      if (s.state() != v1::RUNNING) return false;
      holders.insert(s.worker_id());
    }
    return holders.size() == 3;
  }, 20s, kServerPoll));

  cluster.node(1).kill();
  std::this_thread::sleep_for(1s);
  cluster.node(1).restart();

  for (const auto& id : ids) {
    // A steering message first: when a consumer passes over it but delivers the cancel, the host must
    // still apply the two in the order they were stored.
    const auto steered = client.send(steering(id, "before the cancel"));
    CHECK_MESSAGE(steered.outcome() == v1::DeliveryReceipt::ACCEPTED, id << ": " << steered.detail());
    v1::CancelRequest cancel;
    cancel.set_task_id(id);
    cancel.set_reason("after the restart");
    const auto receipt = client.cancel(cancel);
    CHECK_MESSAGE(receipt.outcome() == v1::DeliveryReceipt::ACCEPTED, id << ": " << receipt.detail());
  }
  bool all_canceled = true;
  for (const auto& id : ids) {
    try {
      const auto c = client.wait(id, 20s);
      all_canceled = all_canceled && c.state() == v1::CANCELED;
      CHECK_MESSAGE(c.state() == v1::CANCELED, id << " ended " << v1::TaskState_Name(c.state()) << " on "
                                                   << c.worker_id() << " (attempt " << c.attempt() << ")");
    } catch (const std::exception& e) {
      all_canceled = false;
      const auto st = client.status(id);
      FAIL_CHECK(id << " (" << v1::TaskState_Name(st.state()) << " '" << st.detail() << "' on " << st.worker_id()
                    << ", progress " << st.progress().current() << ", attempt " << st.attempt() << "): "
                    << std::string(e.what()));
    }
  }
  // Messages the hosts' consumers passed over and the hosts found anyway (see control_channel.hpp): by
  // the catch-up before a later message of the same task, or by the periodic audit.
  size_t found_first = 0, found_by_audit = 0;
  for (auto& h : hosts) {
    const std::string log = h->log();
    for (size_t at = log.find("had not been delivered here"); at != std::string::npos;
         at = log.find("had not been delivered here", at + 1)) {
      const std::string_view first = "had not been delivered here; handled first";
      (log.compare(at, first.size(), first) == 0 ? found_first : found_by_audit) += 1;
    }
  }
  MESSAGE("control messages the consumers passed over: " << found_first << " handled before a later one, "
                                                          << found_by_audit << " found by the audit");
  if (!all_canceled) {
    for (auto& h : hosts) MESSAGE(h->log());
    Probe p(cluster.node(0).url());
    MESSAGE(control_consumers(p, tn::Names("F", "f_tasks")));
  }
  for (auto& h : hosts) stop_cleanly(*h);
}

// Stores a control message for `task_id` the way NatsTaskClient does, but with `reply` as the subject its
// receipt goes to, so that the test sees every receipt, and in the order the host sent them. Returns its
// stream sequence.
uint64_t store_control(Probe& p, const std::string& task_id, const char* type, const google::protobuf::Message& body,
                       const std::string& reply) {
  const std::string subject = tn::Names("F", "f_tasks").control_subject(task_id);
  const std::string bytes = body.SerializeAsString();
  natsMsg* msg = nullptr;
  REQUIRE(natsMsg_Create(&msg, subject.c_str(), nullptr, bytes.data(), static_cast<int>(bytes.size())) == NATS_OK);
  natsMsgHeader_Set(msg, tn::kControlHeader, type);
  natsMsgHeader_Set(msg, tn::kReplyHeader, reply.c_str());
  jsPubAck* pa = nullptr;
  const natsStatus s = js_PublishMsg(&pa, p.js(), msg, nullptr, nullptr);
  natsMsg_Destroy(msg);
  REQUIRE(s == NATS_OK);
  const uint64_t seq = pa->Sequence;
  jsPubAck_Destroy(pa);
  return seq;
}

// The next `n` receipts on `sub`, as (subject, receipt), in the order they came; fails after 10 s each.
std::vector<std::pair<std::string, v1::DeliveryReceipt>> next_receipts(natsSubscription* sub, int n,
                                                                       const std::string& context) {
  std::vector<std::pair<std::string, v1::DeliveryReceipt>> got;
  for (int i = 0; i < n; ++i) {
    natsMsg* m = nullptr;
    REQUIRE_MESSAGE(natsSubscription_NextMsg(&m, sub, 10'000) == NATS_OK, "receipt " << i << "\n" << context);
    v1::DeliveryReceipt r;
    REQUIRE(r.ParseFromArray(natsMsg_GetData(m), natsMsg_GetDataLength(m)));
    got.emplace_back(natsMsg_GetSubject(m), r);
    natsMsg_Destroy(m);
  }
  return got;
}

// Every receipt says ACCEPTED (the message reached the running task), and they came for `subjects` in order.
void check_accepted_in_order(const std::vector<std::pair<std::string, v1::DeliveryReceipt>>& got,
                             const std::vector<std::string>& subjects) {
  REQUIRE(got.size() == subjects.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].first == subjects[i]);
    CHECK_MESSAGE(got[i].second.outcome() == v1::DeliveryReceipt::ACCEPTED, got[i].first << ": " << got[i].second.detail());
  }
}

// One long interactive.count task on one host whose control consumer loses the messages `failpoints` names.
struct LosingHost {
  NatsSingle nats;
  TempDir dir{"taskhost-nats-fault"};
  HostProcess host;
  NatsTaskClient client{client_options(nats.url())};
  std::string id;

  explicit LosingHost(const std::string& failpoints, size_t max_active = 64)
      : host(dir, HostSpec{"loser", nats.url(), "on_receipt", max_active, {"TASKHOST_FAILPOINTS=" + failpoints}}) {
    REQUIRE_MESSAGE(host.wait_ready(), host.log());
    id = submit_counting(client, 1, R"({"steps":2000,"delay_ms":20})").front();
    REQUIRE(eventually([&] { return client.status(id).state() == v1::RUNNING; }, 10s, kServerPoll));
    // And its record names the host: the RUNNING event can be stored before the host's ownership write,
    // and a cancel that finds the record still queued ends the task on the client's side instead.
    Probe p(nats.url());
    const tn::Names names("F", "f_tasks");
    REQUIRE(eventually([&] {
      const auto records = p.read_all(names.kv_stream(), names.kv_subject(tn::Names::task_key(id)));
      return !records.empty() && records.back().second.find("loser") != std::string::npos;
    }, 10s, kServerPoll));
  }
};

TEST_CASE("a steering message the host's consumer lost is applied before the cancel stored after it") {
  LosingHost h("nats.control.lose_steer=1");
  Probe p(h.nats.url());
  natsSubscription* receipts = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&receipts, p.nc(), "fault.receipt.*") == NATS_OK);
  store_control(p, h.id, "steer", steering(h.id, "lost on the way"), "fault.receipt.steer");
  v1::CancelRequest cancel;
  cancel.set_task_id(h.id);
  cancel.set_reason("after a lost steering message");
  store_control(p, h.id, "cancel", cancel, "fault.receipt.cancel");

  // In stream order: the steering message reached the running task, then the cancel ended it. Without
  // the catch-up the steering message would only be found by the audit, after the task had ended.
  const auto got = next_receipts(receipts, 2, h.host.log());
  natsSubscription_Destroy(receipts);
  check_accepted_in_order(got, {"fault.receipt.steer", "fault.receipt.cancel"});
  CHECK(h.client.wait(h.id, 10s).state() == v1::CANCELED);
  const std::string log = h.host.log();
  CHECK_MESSAGE(log.find("failpoint nats.control.lose_steer fired") != std::string::npos, log);
  // Found by the catch-up before the cancel, unless the periodic audit ran in the few milliseconds
  // between the two stores and found it first (either way it came before the cancel, checked above).
  const bool caught_up = log.find("had not been delivered here; handled first") != std::string::npos;
  const bool audited = log.find("had not been delivered here; handled now") != std::string::npos;
  CHECK_MESSAGE((caught_up || audited), log);
  if (!caught_up) MESSAGE("the audit found the lost steering message before the cancel came");
  stop_cleanly(h.host);
}

TEST_CASE("steering for a task not started yet, one message lost by the consumer: all applied in order at its start") {
  LosingHost h("nats.control.lose_steer=1", /*max_active=*/1);  // the first task holds the only slot
  Probe p(h.nats.url());
  const std::string waiting =
      h.client.submit(assignment("waiting", "interactive.count", R"({"steps":2000,"delay_ms":20})"));
  natsSubscription* receipts = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&receipts, p.nc(), "fault.receipt.*") == NATS_OK);
  store_control(p, waiting, "steer", steering(waiting, "first"), "fault.receipt.first");
  const uint64_t second = store_control(p, waiting, "steer", steering(waiting, "second"), "fault.receipt.second");
  // The host's consumer was sent both, lost the first and, the task not being open here, kept the second.
  REQUIRE(eventually([&] { return h.host.log().find("failpoint nats.control.lose_steer fired") != std::string::npos; },
                     10s, kServerPoll));
  REQUIRE(eventually([&] { return control_delivered_through(p, tn::Names("F", "f_tasks")) >= second; }, 10s,
                     kServerPoll));
  std::this_thread::sleep_for(300ms);
  CHECK(h.client.status(waiting).state() == v1::PENDING);

  v1::CancelRequest cancel;
  cancel.set_task_id(h.id);
  cancel.set_reason("make room");
  h.client.cancel(cancel);
  // Without the read at its start, the second would be applied at once and the first by the audit later.
  const auto got = next_receipts(receipts, 2, h.host.log());
  natsSubscription_Destroy(receipts);
  check_accepted_in_order(got, {"fault.receipt.first", "fault.receipt.second"});
  const std::string log = h.host.log();
  CHECK_MESSAGE(log.find("for task 'waiting' had not been delivered here; applied in order at its start") !=
                    std::string::npos,
                log);
  cancel.set_task_id(waiting);
  h.client.cancel(cancel);
  CHECK(h.client.wait(waiting, 10s).state() == v1::CANCELED);
  stop_cleanly(h.host);
}

TEST_CASE("a beat stored although its answer was lost is the host's own: no warning, the task stays put") {
  // The answer to a host's beat can be lost after the server stored it (a timeout around a reconnect);
  // the next beat's compare-and-set then meets that beat. It used to be reported as "changed by another
  // host", which sends an operator looking for a second host under the same worker id.
  LosingHost h("nats.liveness.lose_beat_answer=1");
  REQUIRE(eventually([&] { return h.host.log().find("failpoint nats.liveness.lose_beat_answer fired") != std::string::npos; },
                     10s, kServerPoll));
  std::this_thread::sleep_for(2s);  // four more beats (one every 500 ms)
  const std::string log = h.host.log();
  CHECK_MESSAGE(log.find("was taken by another host") == std::string::npos, log);
  CHECK_MESSAGE(log.find("an older beat of ours") == std::string::npos, log);
  CHECK(h.client.status(h.id).state() == v1::RUNNING);
  CHECK(h.client.status(h.id).worker_id() == "loser");
  stop_cleanly(h.host);
}

TEST_CASE("a cancel the host's consumer lost, with nothing stored after it, is found by the audit") {
  LosingHost h("nats.control.lose_cancel=1");
  v1::CancelRequest cancel;
  cancel.set_task_id(h.id);
  cancel.set_reason("lost on the way");
  // The host never confirms it (the consumer lost it): the client answers from the records.
  const auto receipt = h.client.cancel(cancel);
  CHECK_MESSAGE(receipt.outcome() == v1::DeliveryReceipt::ACCEPTED, receipt.detail());
  // The task counts for 40 s: it ends canceled only if the host finds the stored cancel itself.
  const auto c = h.client.wait(h.id, tn::ControlChannel::kAuditEvery * 5);
  CHECK_MESSAGE(c.state() == v1::CANCELED, v1::TaskState_Name(c.state()) << "\n" << h.host.log());
  const std::string log = h.host.log();
  CHECK_MESSAGE(log.find("failpoint nats.control.lose_cancel fired") != std::string::npos, log);
  CHECK_MESSAGE(log.find("had not been delivered here; handled now") != std::string::npos, log);
  stop_cleanly(h.host);
}

TEST_CASE("a cancel whose receipt was lost, its task ended canceled meanwhile: the answer says the cancel took") {
  // The host applies the cancel, but its receipt (core NATS) never reaches the sender, as around a
  // reconnect. The client then answers from the records, which by then hold the task's end. That end
  // came after the cancel was stored: the answer used to be "already ended", as if it came too late.
  LosingHost h("nats.control.lose_receipt=1");
  h.client.set_receipt_wait(5s);  // long enough for the task to end and its completion to be stored
  v1::CancelRequest cancel;
  cancel.set_task_id(h.id);
  cancel.set_reason("receipt lost");
  const auto receipt = h.client.cancel(cancel);
  CHECK_MESSAGE(receipt.outcome() == v1::DeliveryReceipt::ACCEPTED, receipt.detail());
  CHECK_MESSAGE(receipt.detail().find("ended canceled after the cancel was stored") != std::string::npos,
                receipt.detail());
  CHECK(h.client.wait(h.id, 10s).state() == v1::CANCELED);
  // A message stored after the end is still answered "already ended".
  CHECK(h.client.send(steering(h.id, "too late")).outcome() == v1::DeliveryReceipt::TASK_ENDED);
  const std::string log = h.host.log();
  CHECK_MESSAGE(log.find("failpoint nats.control.lose_receipt fired") != std::string::npos, log);
  stop_cleanly(h.host);
}

TEST_CASE("SIGKILL of a host running long tasks: a surviving host re-attaches them from their checkpoints") {
  NatsSingle nats;
  TempDir dir("taskhost-nats-fault");
  HostProcess victim(dir, HostSpec{"victim", nats.url()});
  REQUIRE_MESSAGE(victim.wait_ready(), victim.log());
  NatsTaskClient client(client_options(nats.url()));
  const std::vector<std::string> ids = submit_counting(client, 4, R"({"steps":60,"delay_ms":40})");
  REQUIRE(eventually([&] {
    for (const auto& id : ids) {
      if (client.status(id).progress().current() < 5) return false;
    }
    return true;
  }, 10s, kServerPoll));
  victim.process().kill_now();
  HostProcess survivor(dir, HostSpec{"survivor", nats.url()});
  REQUIRE_MESSAGE(survivor.wait_ready(), survivor.log());
  for (const auto& id : ids) {
    const auto c = client.wait(id, 30s);
    CHECK(c.state() == v1::SUCCEEDED);
    CHECK(c.worker_id() == "survivor");
    CHECK(c.attempt() == 2);
    const auto& f = c.output().struct_value().fields();
    CHECK(f.at("resumed_from").number_value() >= 5);
    CHECK(f.at("counted").number_value() == 60);
  }
  CHECK(survivor.log().find("rescuing 4 task(s) of victim") != std::string::npos);
  stop_cleanly(survivor);
}

namespace {

// SIGTERM, not SIGKILL: the draining host detaches its long re-attachable task after a short grace and
// hands it to the other host at once (its liveness key says it left), which re-attaches it from its
// checkpoint; its task of a kind that cannot re-attach (test.plain) ends canceled, naming the shutdown.
// `leaving` owned both before `stays` started, so only a hand-over can bring the first one to `stays`.
void sigterm_hands_reattachable_tasks_over(const std::string& ack_mode) {
  NatsSingle nats;
  TempDir dir("taskhost-nats-fault");
  const auto plugins = dir.path() / "plugins";
  std::filesystem::create_directories(plugins);
  std::filesystem::copy_file(std::filesystem::path(TASKHOST_PLUGIN_DIR) / "cpp-interactive.so",
                             plugins / "cpp-interactive.so");
  std::filesystem::copy_file(std::filesystem::path(TASKHOST_FIXTURE_DIR) / "scripted-v1.so", plugins / "scripted.so");
  auto spec = [&](const std::string& worker) {
    HostSpec s{worker, nats.url(), ack_mode};
    s.plugins_dir = plugins.string();
    s.drain_grace_ms = 300;
    return s;
  };
  HostProcess leaving(dir, spec("leaving"));
  REQUIRE_MESSAGE(leaving.wait_ready(), leaving.log());
  NatsTaskClient client(client_options(nats.url()));
  const std::string counting = client.submit(assignment("counting", "interactive.count", R"({"steps":100,"delay_ms":30})"));
  const std::string plain = client.submit(assignment("plain", "test.plain", R"("runs until canceled")"));
  REQUIRE_MESSAGE(eventually([&] {
    const auto c = client.status(counting);
    const auto p = client.status(plain);
    return c.worker_id() == "leaving" && c.progress().current() >= 5 && p.worker_id() == "leaving" &&
           p.state() == v1::RUNNING;
  }, 10s, kServerPoll), leaving.log());

  HostProcess stays(dir, spec("stays"));
  REQUIRE_MESSAGE(stays.wait_ready(), stays.log());
  REQUIRE(client.status(counting).state() == v1::RUNNING);  // still counting (3 s in all) when the drain begins
  const auto sigterm = std::chrono::steady_clock::now();
  stop_cleanly(leaving);
  INFO("leaving:\n" << leaving.log() << "\nstays:\n" << stays.log());

  const auto c = client.wait(counting, 20s);
  const auto handed_over_in = std::chrono::steady_clock::now() - sigterm;
  CHECK_MESSAGE(c.state() == v1::SUCCEEDED, v1::TaskState_Name(c.state()), ": ", c.error().message());
  CHECK(c.worker_id() == "stays");
  CHECK(c.attempt() == 2);
  if (c.state() == v1::SUCCEEDED) {
    const auto& f = c.output().struct_value().fields();
    CHECK(f.at("resumed_from").number_value() >= 5);  // from its checkpoint, not from the start
    CHECK(f.at("counted").number_value() == 100);
  }
  // One completion, the rescuer's: the draining host published none (a CANCELED one used to go first).
  Probe probe(nats.url());
  const auto stored = probe.completions(tn::Names("F", "f_tasks"));
  REQUIRE(stored.count(counting) == 1);
  CHECK(stored.at(counting).size() == 1);
  for (const auto& stored_one : stored.at(counting)) CHECK(stored_one.state() == v1::SUCCEEDED);
  MESSAGE(fmt::format("{} ({}): handed over and finished {} ms after SIGTERM", counting, ack_mode,
                      std::chrono::duration_cast<std::chrono::milliseconds>(handed_over_in).count()));
  // Handed over, not found dead by its silence (host_dead_after) as a SIGKILLed host is.
  CHECK(stays.log().find("host leaving stopped and left its running tasks to the fleet") != std::string::npos);
  CHECK(stays.log().find("is dead (no liveness update") == std::string::npos);
  CHECK(leaving.log().find("1 task(s) left for another host") != std::string::npos);

  const auto p = client.wait(plain, 5s);
  CHECK(p.state() == v1::CANCELED);
  CHECK(p.worker_id() == "leaving");
  CHECK_MESSAGE(p.error().message().find("host leaving is shutting down") != std::string::npos, p.error().message());
  stop_cleanly(stays);
}

}  // namespace

TEST_CASE("SIGTERM of a host running long tasks: another host re-attaches the re-attachable one at once (on_receipt)") {
  sigterm_hands_reattachable_tasks_over("on_receipt");
}

TEST_CASE("SIGTERM of a host running long tasks: another host re-attaches the re-attachable one at once (on_completion)") {
  sigterm_hands_reattachable_tasks_over("on_completion");
}

TEST_CASE("a task whose plugin crashes every host that resumes it is failed \"poisoned\" after max_deliver starts") {
  // test.hold with "abort-reattach" runs on its first start and aborts the host on every re-attach:
  // in-process, each rescue would take down the next host of the fleet.
  NatsSingle nats;
  TempDir dir("taskhost-nats-fault");
  const auto plugins = scripted_plugins_dir(dir);
  auto spec = [&](const std::string& worker) {
    HostSpec s{worker, nats.url()};
    s.plugins_dir = plugins.string();
    s.max_deliver = 2;
    return s;
  };
  NatsTaskClient client(client_options(nats.url()));

  HostProcess first(dir, spec("first"));
  REQUIRE_MESSAGE(first.wait_ready(), first.log());
  const std::string id = client.submit(assignment("resume-crash", "test.hold", R"("abort-reattach")"));
  {  // Killed once its record names it (record_after): the record is what makes it a task to rescue.
    const auto options = client_options(nats.url());
    const tn::Names names(options.stream_prefix, options.kv_bucket);
    tn::Connection connection(options, "record probe");
    const tn::RecordStore records(connection, names);
    REQUIRE(eventually([&] {
      const auto held = records.task(id);
      return held && held->record.owner == "first";
    }, 10s, kServerPoll));
  }
  first.process().kill_now();

  // Start 2 of 2 crashes the rescuer.
  HostProcess second(dir, spec("second"));
  const int crashed = second.process().wait(30s);
  INFO(second.log());
  REQUIRE(crashed != -1);
  CHECK(WIFSIGNALED(crashed));
  CHECK(second.log().find("fatal SIGABRT in a call of task 'resume-crash' (kind 'test.hold')") != std::string::npos);

  // The next rescuer counts two starts: the task ends, the host stays up.
  HostProcess third(dir, spec("third"));
  REQUIRE_MESSAGE(third.wait_ready(), third.log());
  INFO(third.log());
  const auto c = client.wait(id, 30s);
  CHECK(c.state() == v1::FAILED);
  CHECK(c.error().kind() == "poisoned");
  CHECK(c.error().code() == v1::WORKER_ERROR);
  CHECK(c.error().message().find("was started 2 times and the host running it died each time (the last was second)") !=
        std::string::npos);
  CHECK(third.process().running());
  CHECK(no_core_files);
  stop_cleanly(third);
}

TEST_CASE("with a state_dir, a NATS host refuses in-process the plugin content that crashed it while loading") {
  NatsSingle nats;
  TempDir dir("taskhost-nats-fault");
  const auto plugins = scripted_plugins_dir(dir);
  auto spec = [&](const std::string& worker) {
    HostSpec s{worker, nats.url()};
    s.plugins_dir = plugins.string();
    s.state_dir = (dir.path() / "state").string();
    return s;
  };
  {
    HostProcess host(dir, spec("before"));
    REQUIRE_MESSAGE(host.wait_ready(), host.log());
    // Dropped into the running host's plugins directory: its factory aborts, and the host with it.
    std::filesystem::copy_file(std::filesystem::path(TASKHOST_FIXTURE_DIR) / "loader-broken-factory-abort.so",
                               plugins / "bad.so.tmp");
    std::filesystem::rename(plugins / "bad.so.tmp", plugins / "bad.so");
    const int status = host.process().wait(30s);
    INFO(host.log());
    REQUIRE(status != -1);
    CHECK(WIFSIGNALED(status));
    CHECK(host.log().find("fatal SIGABRT while loading plugin file") != std::string::npos);
  }
  HostProcess host(dir, spec("after"));
  REQUIRE_MESSAGE(host.wait_ready(), host.log());
  INFO(host.log());
  CHECK(host.log().find("the last run died of SIGABRT while loading plugin file") != std::string::npos);
  CHECK(host.log().find("crashed the host while loading in-process (SIGABRT)") != std::string::npos);
  NatsTaskClient client(client_options(nats.url()));
  const std::string id = client.submit(assignment("after-crash", "test.instant", R"("still here")"));
  const auto c = client.wait(id, 30s);
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.worker_id() == "after");
  CHECK(host.process().running());
  stop_cleanly(host);
}

TEST_CASE("a task canceled between a host's pull and its start never starts, as the cancel's answer says") {
  // The client cancels a queued task by marking its record; the host had already pulled the message.
  // The failpoint holds the host between the pull and its claim on the record: the cancel lands there.
  NatsSingle nats;
  TempDir dir;
  HostProcess host(dir, HostSpec{"puller", nats.url(), "on_receipt", 64, {"TASKHOST_FAILPOINTS=nats.intake.slow_claim=1"}});
  REQUIRE_MESSAGE(host.wait_ready(), host.log());
  NatsTaskClient client(client_options(nats.url()));
  const auto marker = dir.path() / "ran";
  const std::string id = client.submit(
      assignment("pulled-then-canceled", "exec.run", R"({"argv":["touch",")" + marker.string() + R"("]})"));
  REQUIRE_MESSAGE(eventually([&] { return host.log().find("failpoint nats.intake.slow_claim fired") != std::string::npos; },
                             10s, kServerPoll),
                  host.log());
  v1::CancelRequest cancel;
  cancel.set_task_id(id);
  const auto receipt = client.cancel(cancel);
  CHECK_MESSAGE(receipt.outcome() == v1::DeliveryReceipt::ACCEPTED, receipt.detail());
  REQUIRE_MESSAGE(receipt.detail().find("canceled before any host started it") != std::string::npos, receipt.detail());
  // The host claims, finds the cancel, and lets the task go: the program never runs, the one terminal
  // record is the client's, and no record is left behind for `status` to list.
  CHECK_MESSAGE(eventually([&] { return host.log().find("not starting it") != std::string::npos; }, 10s, kServerPoll),
                host.log());
  CHECK(eventually([&] { return client.list().tasks_size() == 0; }, 10s, kServerPoll));
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(std::filesystem::exists(marker));
  const auto c = client.wait(id, 5s);
  CHECK(c.state() == v1::CANCELED);
  CHECK(c.worker_id().empty());
  // Tasks after it run as usual (the host took the next claim's path too).
  const auto after = client.submit(assignment("after-the-cancel", "hello.greet", R"({"name":"Ada"})"));
  CHECK(client.wait(after, 10s).state() == v1::SUCCEEDED);
  stop_cleanly(host);
}

TEST_CASE("claims answered late hold up no in-progress ack: the task stays on the host that claimed it") {
  // The failpoint takes the answers to a host's claims as if the server gave them 5 s late, longer than
  // ack_wait (3 s). The transport's worker thread sends the in-progress acks that keep a delivery on its
  // host; it once waited for those answers, and sent none meanwhile, so JetStream handed the task to
  // another host while its claim was still on the way.
  NatsSingle nats;
  TempDir dir;
  // One slot: while it holds the task the holder pulls nothing, so a redelivery can only go to `idle`.
  HostProcess holder(dir, HostSpec{"holder", nats.url(), "on_completion", 1,
                                   {"TASKHOST_FAILPOINTS=nats.intake.slow_claim_answers=1"}});
  REQUIRE_MESSAGE(holder.wait_ready(), holder.log());
  NatsTaskClient client(client_options(nats.url()));
  const std::string id = client.submit(assignment("claimed-slowly", "interactive.count", R"({"steps":10,"delay_ms":100})"));
  REQUIRE_MESSAGE(
      eventually([&] { return holder.log().find("failpoint nats.intake.slow_claim_answers fired") != std::string::npos; },
                 10s, kServerPoll),
      holder.log());
  auto idle_options = client_options(nats.url());  // the holder's deployment
  idle_options.worker_id = "idle";
  idle_options.ack_mode = AckMode::on_completion;
  idle_options.ack_wait = 3s;
  HostRig idle(idle_options);
  const auto c = client.wait(id, 30s);
  INFO(holder.log());
  CHECK(c.state() == v1::SUCCEEDED);
  CHECK(c.worker_id() == "holder");
  CHECK(c.attempt() == 1);
  CHECK(idle.transport().stats().received == 0);
  CHECK(holder.log().find("delivered again while this host holds it") == std::string::npos);
  stop_cleanly(holder);
}

namespace {

// Publishes `a` straight onto its kind's work queue, as an orchestrator would, with no client record.
void publish_raw(const std::string& url, const v1::TaskAssignment& a) {
  Probe p(url);
  const tn::Names names("F", "f_tasks");
  const std::string bytes = a.SerializeAsString();
  jsErrCode code = static_cast<jsErrCode>(0);
  REQUIRE(js_Publish(nullptr, p.js(), names.task_subject(a.execute().component_id()).c_str(), bytes.data(),
                     static_cast<int>(bytes.size()), nullptr, &code) == NATS_OK);
}

}  // namespace

TEST_CASE("an assignment whose task id is over 256 bytes is dropped, naming the field; the host serves on") {
  // The id goes into the subjects of the task's events and the key of its record. QA published one of
  // 5,000 characters: past the server's control line limit, the server closed each host's connection in
  // turn (JetStream redelivered the message to the next), and every host of the fleet was cut off.
  NatsSingle nats;
  TempDir dir;
  HostProcess host(dir, HostSpec{"h1", nats.url()});
  REQUIRE_MESSAGE(host.wait_ready(), host.log());
  publish_raw(nats.url(), assignment(std::string(5000, 'L'), "hello.greet", R"({"name":"long"})"));
  REQUIRE_MESSAGE(eventually([&] { return host.log().find("field 'task_id' is 5000 bytes long, longer than 256") !=
                                          std::string::npos; },
                             10s, kServerPoll),
                  host.log());
  NatsTaskClient client(client_options(nats.url()));
  const auto after = client.submit(assignment("after-the-long-id", "hello.greet", R"({"name":"Ada"})"));
  CHECK_MESSAGE(client.wait(after, 10s).state() == v1::SUCCEEDED, host.log());
  CHECK(host.log().find("closed the connection") == std::string::npos);
  stop_cleanly(host);
}

TEST_CASE("a host whose connection the server closed for good exits with status 1, naming the server's error") {
  // cnats reconnects after a lost server, but not after the server closed the connection over a
  // protocol error. Such a host once ran on with a dead connection: alive to its process manager, it
  // served no one and logged failed writes ten times a second. Here the server's control line limit is
  // 512 bytes and a task id of 200 '/' (each "=2F" in a subject) makes the host's event subject longer.
  TempDir server_dir("taskhost-nats-line");
  NatsServer::Options server_options;
  server_options.work_dir = server_dir.path();
  server_options.extra_config = "max_control_line: 512\n";
  NatsServer server(server_options);
  TempDir dir;
  HostProcess host(dir, HostSpec{"h1", server.url()});
  REQUIRE_MESSAGE(host.wait_ready(), host.log());
  publish_raw(server.url(), assignment(std::string(200, '/'), "hello.greet", R"({"name":"slashes"})"));
  const int st = host.process().wait(20s);
  INFO(host.log());
  REQUIRE_MESSAGE(st != -1, "the host still runs 20 s after the server closed its connection");
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 1);
  CHECK(host.log().find("the server closed the connection for good") != std::string::npos);
  std::string lower = host.log();
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  CHECK(lower.find("maximum control line exceeded") != std::string::npos);
}

TEST_CASE("a host SIGSTOPped until a rescuer finished its task drops its attempt on SIGCONT, writing nothing more") {
  // Split brain after the fact: while `stale` is stopped, `rescuer` declares it dead, resumes its task
  // from the record and completes it, which deletes the record. On SIGCONT the stale host's plugin goes
  // on where it was; the host must find out, before it writes anything more for the task, that the task
  // was finished elsewhere: a missing record with a completion stored is a finished task, not one to
  // record again.
  NatsSingle nats;
  TempDir dir("taskhost-nats-fault");
  HostProcess stale(dir, HostSpec{"stale", nats.url()});
  REQUIRE_MESSAGE(stale.wait_ready(), stale.log());
  NatsTaskClient client(client_options(nats.url()));
  const std::string id = submit_counting(client, 1, R"({"steps":12,"delay_ms":500})").front();
  REQUIRE(eventually([&] { return client.status(id).progress().current() >= 1; }, 10s, kServerPoll));
  HostProcess rescuer(dir, HostSpec{"rescuer", nats.url()});
  REQUIRE_MESSAGE(rescuer.wait_ready(), rescuer.log());
  const auto before = client.status(id);
  REQUIRE(before.worker_id() == "stale");
  REQUIRE(before.progress().current() < 10);
  stale.process().signal(SIGSTOP);
  const auto c = client.wait(id, 30s);
  REQUIRE_MESSAGE(c.state() == v1::SUCCEEDED, rescuer.log());
  CHECK(c.worker_id() == "rescuer");
  CHECK(c.attempt() == 2);
  {
    // The rescuer deletes the record once the completion is stored, a moment later: woken before that,
    // the stale host finds the rescuer's record and is fenced as "held by rescuer" (make test saw it).
    const auto options = client_options(nats.url());
    tn::Connection connection(options, "record probe");
    const tn::RecordStore records(connection, tn::Names(options.stream_prefix, options.kv_bucket));
    REQUIRE(eventually([&] { return !records.task(id); }, 10s, kServerPoll));
  }
  stale.process().signal(SIGCONT);
  // Unfenced, the stale attempt wrote the record again within a beat and ran its remaining steps
  // (about 4 s): the task was listed as unfinished all that time.
  bool listed = false;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!listed && std::chrono::steady_clock::now() < until) {
    const auto unfinished = client.list();
    for (const auto& s : unfinished.tasks()) listed = listed || s.task_id() == id;
    std::this_thread::sleep_for(100ms);
  }
  CHECK_MESSAGE(!listed, stale.log());
  CHECK_MESSAGE(stale.log().find("task " + id + " was finished by another host; dropping this host's attempt") !=
                    std::string::npos,
                stale.log());
  // The completion is the task's last word: no events batch of the stale attempt after it.
  Probe probe(nats.url());
  const tn::Names names("F", "f_tasks");
  const auto items = probe.items_of(names, id, /*snapshots=*/true);
  REQUIRE_FALSE(items.empty());
  CHECK_MESSAGE(items.back().has_completion(), json_of(items.back()));
  CHECK(items.back().completion().worker_id() == "rescuer");
  stop_cleanly(stale);
  stop_cleanly(rescuer);
}
