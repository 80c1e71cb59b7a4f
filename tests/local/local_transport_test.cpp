// The embedded transport in-process, with a real Host and real plugins: concurrent submits and watchers
// (every task completes exactly once, every watcher sees every completion), first-completion-wins against
// the router, receipts for unknown and ended tasks, watch replay, and recovery from a store left by a host
// that died (re-attach with attempt + 1 from the checkpoint, "orphaned" for a kind that cannot re-attach,
// canceled when a cancel had been asked, unanswered messages delivered again).
#include "host/host.hpp"
#include "transport/local/local_transport.hpp"

#include <doctest/doctest.h>

#include <google/protobuf/util/json_util.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace fs = std::filesystem;
namespace v1 = taskhost::v1;
using namespace std::chrono_literals;
using taskhost::transport::local::LocalOptions;
using taskhost::transport::local::LocalTransport;
using taskhost::transport::local::Store;
using taskhost::transport::local::SubmitResult;

namespace {

struct TempDir {
  TempDir() {
    path = fs::temp_directory_path() / ("taskhost-local-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(path / "plugins");
    for (const auto& f : {fs::path(TASKHOST_PLUGIN_DIR) / "hello-c.so", fs::path(TASKHOST_PLUGIN_DIR) / "cpp-interactive.so",
                          fs::path(TASKHOST_FIXTURE_DIR) / "hold.so", fs::path(TASKHOST_FIXTURE_DIR) / "scripted-v1.so"}) {
      fs::copy_file(f, path / "plugins" / f.filename());
    }
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

// A transport and a host wired as `taskhost serve` wires them.
struct Node {
  explicit Node(const fs::path& dir, std::chrono::seconds keep_ended = LocalOptions{}.keep_ended,
                size_t finished_memory_bytes = LocalOptions{}.finished_memory_bytes)
      : transport(options(dir, keep_ended, finished_memory_bytes)),
        host(host_options(dir), transport),
        attached(transport.attach(host.router())) {
    report = transport.recover();
  }
  static LocalOptions options(const fs::path& dir, std::chrono::seconds keep_ended, size_t finished_memory_bytes) {
    LocalOptions o;
    o.state_dir = dir / "state";
    o.keep_ended = keep_ended;
    o.finished_memory_bytes = finished_memory_bytes;
    return o;
  }
  static taskhost::HostOptions host_options(const fs::path& dir) {
    taskhost::HostOptions o;
    o.plugins_dir = dir / "plugins";
    o.router.cancel_deadline = 2s;
    return o;
  }
  LocalTransport transport;
  taskhost::Host host;
  LocalTransport::Attachment attached;  // ends first: detached before the host is destroyed
  taskhost::transport::local::RecoveryReport report;
};

v1::TaskAssignment assignment(const std::string& id, const std::string& kind, const std::string& input_json) {
  v1::TaskAssignment a;
  a.set_task_id(id);
  a.mutable_execute()->set_component_id(kind);
  a.mutable_execute()->set_attempt(1);
  REQUIRE(google::protobuf::util::JsonStringToMessage(input_json, a.mutable_execute()->mutable_input()).ok());
  return a;
}

std::optional<v1::TaskStatus> wait_ended(LocalTransport& t, const std::string& id, std::chrono::milliseconds timeout = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto s = t.status(id);
    if (s && s->has_completion()) return s;
    std::this_thread::sleep_for(10ms);
  }
  return t.status(id);
}

bool wait_state(LocalTransport& t, const std::string& id, v1::TaskState state) {
  for (int i = 0; i < 1500; ++i) {
    auto s = t.status(id);
    if (s && s->state() == state) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

TEST_CASE("concurrent submits and watchers: every task completes exactly once and every watcher sees it") {
  TempDir dir;
  Node node(dir.path);
  std::mutex mu;
  std::map<std::string, int> seen_by_all;
  std::atomic<int> wakeups{0};
  auto watcher = node.transport.watch("", [&] { ++wakeups; });

  constexpr int kThreads = 4;
  constexpr int kPerThread = 40;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "c" + std::to_string(t) + "-" + std::to_string(i);
        const auto r = node.transport.submit(assignment(id, "hello.greet", R"({"name":"N"})"));
        CHECK(r.result == SubmitResult::Result::accepted);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const auto s = wait_ended(node.transport, "c" + std::to_string(t) + "-" + std::to_string(i));
      REQUIRE(s);
      CHECK(s->state() == v1::SUCCEEDED);
    }
  }
  for (const auto& item : watcher->take()) {
    if (item.has_completion()) ++seen_by_all[item.completion().task_id()];
  }
  CHECK(seen_by_all.size() == static_cast<size_t>(kThreads * kPerThread));
  for (const auto& [id, n] : seen_by_all) CHECK_MESSAGE(n == 1, id);
  CHECK(wakeups.load() > 0);
  node.transport.store().flush();
  CHECK(node.transport.store().unfinished().empty());
  CHECK(node.transport.metrics().completed_total.at({"hello.greet", v1::SUCCEEDED}) == kThreads * kPerThread);
}

TEST_CASE("ended tasks in memory are bounded by bytes too; the ones let go are answered from the store; listings leave large outputs out") {
  TempDir dir;
  constexpr size_t kBudget = 1u << 20;
  const std::string pad(100'000, 'p');  // test.instant completes with its input: ~100 KB per ended task
  auto ended_in_memory = [](LocalTransport& t) {
    const auto m = t.metrics().tasks;
    const auto it = m.find({"test.instant", v1::SUCCEEDED});
    return it == m.end() ? uint64_t{0} : it->second;
  };
  {
    Node node(dir.path, LocalOptions{}.keep_ended, kBudget);
    for (int i = 0; i < 30; ++i) {
      const std::string id = "big-" + std::to_string(i);
      REQUIRE(node.transport.submit(assignment(id, "test.instant", R"({"pad":")" + pad + R"("})")).result ==
              SubmitResult::Result::accepted);
      const auto s = wait_ended(node.transport, id);
      REQUIRE(s);
      REQUIRE(s->state() == v1::SUCCEEDED);
    }
    const uint64_t kept = ended_in_memory(node.transport);
    CHECK(kept >= 5);                      // the newest are kept...
    CHECK(kept <= kBudget / pad.size());  // ...within the budget, not all 30
    const auto oldest = node.transport.status("big-0");  // let go: read from the store, output and all
    REQUIRE(oldest);
    CHECK(oldest->state() == v1::SUCCEEDED);
    CHECK(oldest->completion().output().struct_value().fields().at("pad").string_value() == pad);
    // A listing leaves each large output out, whether the task is in memory or read from the store, and
    // says how large it was; a small one it keeps.
    REQUIRE(node.transport.submit(assignment("small", "hello.greet", R"({"name":"Ada"})")).result ==
            SubmitResult::Result::accepted);
    REQUIRE(wait_ended(node.transport, "small"));
    const auto page = node.transport.list_page("", 100);
    REQUIRE(page);
    REQUIRE(page->tasks.tasks_size() == 31);
    for (const auto& listed : page->tasks.tasks()) {
      INFO(listed.task_id());
      CHECK(listed.state() == v1::SUCCEEDED);
      if (listed.task_id() == "small") {
        CHECK(listed.completion().output().string_value() == "Hello, Ada!");
        CHECK(listed.output_omitted_bytes() == 0);
      } else {
        CHECK_FALSE(listed.completion().has_output());
        CHECK(listed.output_omitted_bytes() > pad.size());
        CHECK(listed.completion().state() == v1::SUCCEEDED);
      }
    }
    // The task's own status still has it, and the listing took nothing from the kept entry.
    const auto newest = node.transport.status("big-29");
    REQUIRE(newest);
    CHECK(newest->completion().output().struct_value().fields().at("pad").string_value() == pad);
    CHECK(newest->output_omitted_bytes() == 0);
  }
  // A restart loads the most recently ended tasks within the same budget.
  Node again(dir.path, LocalOptions{}.keep_ended, kBudget);
  CHECK(ended_in_memory(again.transport) <= kBudget / pad.size());
  CHECK(again.transport.status("big-29"));
  // Loaded back into memory, they are still listed without their outputs.
  const auto page = again.transport.list_page("", 100);
  REQUIRE(page);
  REQUIRE(page->tasks.tasks_size() == 31);
  for (const auto& listed : page->tasks.tasks()) {
    INFO(listed.task_id());
    CHECK(listed.completion().has_output() == (listed.task_id() == "small"));
  }
}

TEST_CASE("the first completion wins, even over the router's own") {
  TempDir dir;
  Node node(dir.path);
  REQUIRE(node.transport.submit(assignment("h", "hold.forever", "{}")).result == SubmitResult::Result::accepted);
  REQUIRE(wait_state(node.transport, "h", v1::RUNNING));
  v1::TaskCompletion first;
  first.set_task_id("h");
  first.set_attempt(1);
  first.set_state(v1::FAILED);
  first.mutable_error()->set_message("first");
  node.transport.on_completion(first);
  v1::TaskCompletion second = first;
  second.set_state(v1::SUCCEEDED);
  second.clear_error();
  node.transport.on_completion(second);
  // The transport itself now answers for the task: it ended.
  v1::CancelRequest cancel;
  cancel.set_task_id("h");
  CHECK(node.transport.cancel(cancel).outcome() == v1::DeliveryReceipt::TASK_ENDED);
  // The router, which still runs it, ends it canceled: a third completion, also dropped.
  CHECK(node.host.router().cancel(cancel).outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(node.host.router().wait_idle(5s));
  const auto s = node.transport.status("h");
  REQUIRE(s);
  CHECK(s->state() == v1::FAILED);
  CHECK(s->completion().error().message() == "first");
  node.transport.store().flush();
  const auto stored = node.transport.store().task("h");
  REQUIRE(stored);
  REQUIRE(stored->completion);
  CHECK(stored->completion->error().message() == "first");
}

TEST_CASE("receipts: unknown and ended tasks are answered without recording anything") {
  TempDir dir;
  Node node(dir.path);
  v1::SteeringMessage m;
  m.set_task_id("nobody");
  m.add_parts()->set_text("hi");
  CHECK(node.transport.send(m).outcome() == v1::DeliveryReceipt::UNKNOWN_TASK);
  REQUIRE(node.transport.submit(assignment("g", "hello.greet", R"({"name":"A"})")).result == SubmitResult::Result::accepted);
  REQUIRE(wait_ended(node.transport, "g"));
  m.set_task_id("g");
  const auto r = node.transport.send(m);
  CHECK(r.outcome() == v1::DeliveryReceipt::TASK_ENDED);
  CHECK(r.detail().find("already ended") != std::string::npos);
  node.transport.store().flush();
  CHECK(node.transport.store().messages("g").empty());
  CHECK(node.transport.store().messages("nobody").empty());
  // Malformed and duplicate submits.
  CHECK(node.transport.submit(assignment("bad id", "hello.greet", "{}")).result == SubmitResult::Result::invalid);
  CHECK(node.transport.submit(assignment("g", "hello.greet", "{}")).result == SubmitResult::Result::duplicate);
  const auto nk = node.transport.submit(assignment("nk", "no.kind", "{}"));
  CHECK(nk.result == SubmitResult::Result::rejected);
  CHECK(nk.code == v1::COMPONENT_NOT_FOUND);
  // Draining: nothing is recorded.
  node.transport.set_accepting(false);
  CHECK(node.transport.submit(assignment("late", "hello.greet", "{}")).result == SubmitResult::Result::unavailable);
  CHECK_FALSE(node.transport.status("late"));
}

TEST_CASE("steering message ids are per task: two running tasks each take an \"m1\", a task's own again is refused") {
  TempDir dir;
  Node node(dir.path);
  for (const char* id : {"a", "b"}) {
    REQUIRE(node.transport.submit(assignment(id, "interactive.count", R"({"steps":200,"delay_ms":50})")).result ==
            SubmitResult::Result::accepted);
    REQUIRE(wait_state(node.transport, id, v1::RUNNING));
  }
  v1::SteeringMessage m;
  m.set_message_id("m1");
  m.add_parts()->set_text("faster");
  m.set_task_id("a");
  const auto to_a = node.transport.send(m);
  CHECK_MESSAGE(to_a.outcome() == v1::DeliveryReceipt::ACCEPTED, to_a.detail());
  m.set_task_id("b");
  const auto to_b = node.transport.send(m);
  CHECK_MESSAGE(to_b.outcome() == v1::DeliveryReceipt::ACCEPTED, to_b.detail());
  m.set_task_id("a");
  const auto again = node.transport.send(m);
  CHECK(again.outcome() == v1::DeliveryReceipt::REJECTED);
  CHECK(again.detail() == "message 'm1' was already sent");
  node.transport.store().flush();
  for (const char* id : {"a", "b"}) {
    const auto stored = node.transport.store().messages(id);
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].answered);
    v1::CancelRequest c;
    c.set_task_id(id);
    node.transport.cancel(c);
    const auto s = wait_ended(node.transport, id);
    REQUIRE(s);
    CHECK(s->state() == v1::CANCELED);
  }
}

TEST_CASE("an ended task is deleted once keep_ended has passed, and its id then runs as a new task") {
  TempDir dir;
  Node node(dir.path, 1s);
  REQUIRE(node.transport.submit(assignment("brief", "hello.greet", R"({"name":"A"})")).result ==
          SubmitResult::Result::accepted);
  REQUIRE(node.transport.submit(assignment("held", "hold.forever", "{}")).result == SubmitResult::Result::accepted);
  const auto first = wait_ended(node.transport, "brief");
  REQUIRE(first);
  REQUIRE(first->state() == v1::SUCCEEDED);
  REQUIRE(wait_state(node.transport, "held", v1::RUNNING));

  // The pruner runs every 500 ms here; the task is gone within a few seconds of ending, store and memory.
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (node.transport.status("brief") && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  CHECK_FALSE(node.transport.status("brief"));
  CHECK_FALSE(node.transport.store().task("brief"));
  CHECK(node.transport.store().events("brief", 10).empty());
  CHECK_FALSE(node.host.router().snapshot("brief"));

  // A running task is older than keep_ended too, and stays.
  const auto held = node.transport.status("held");
  REQUIRE(held);
  CHECK(held->state() == v1::RUNNING);

  // The same id again is a new task, and it runs (the router must not take it for the ended one).
  REQUIRE(node.transport.submit(assignment("brief", "hello.greet", R"({"name":"B"})")).result ==
          SubmitResult::Result::accepted);
  const auto again = wait_ended(node.transport, "brief");
  REQUIRE(again);
  CHECK(again->state() == v1::SUCCEEDED);
  CHECK(again->completion().output().string_value().find('B') != std::string::npos);

  v1::CancelRequest cancel;
  cancel.set_task_id("held");
  node.transport.cancel(cancel);
  REQUIRE(wait_ended(node.transport, "held"));
}

TEST_CASE("watching one task replays its events, then its completion, in order") {
  TempDir dir;
  Node node(dir.path);
  REQUIRE(node.transport.submit(assignment("c", "interactive.count", R"({"steps":3,"delay_ms":5})")).result ==
          SubmitResult::Result::accepted);
  REQUIRE(wait_ended(node.transport, "c"));
  auto sub = node.transport.watch("c", [] {});
  const auto items = sub->take();
  REQUIRE(items.size() >= 4);
  CHECK(items.front().event().state().state() == v1::PENDING);
  CHECK(items.back().has_completion());
  uint64_t last_seq = 0;
  for (const auto& it : items) {
    if (!it.has_event() || it.event().has_progress()) continue;
    CHECK(it.event().seq() > last_seq);
    last_seq = it.event().seq();
  }
  // Progress is durable only as its latest value: the replay carries that, just before the completion.
  REQUIRE(items[items.size() - 2].event().has_progress());
  CHECK(items[items.size() - 2].event().progress().current() == 3);
  // ... stamped as of the end: `watch` printed it at 00:00:00.000.
  CHECK(items[items.size() - 2].event().unix_ms() == items.back().completion().unix_ms());
}

TEST_CASE("recovery from a store left by a dead host") {
  TempDir dir;
  {
    // What a host that died mid-flight leaves behind, written straight into the store.
    Store store(dir.path / "state");
    auto started = [&](const v1::TaskAssignment& a, const std::string& checkpoint) {
      REQUIRE(store.insert_task(a));
      v1::TaskEvent e;
      e.set_task_id(a.task_id());
      e.set_attempt(1);
      e.mutable_state()->set_state(v1::RUNNING);
      store.record_event(e);
      if (!checkpoint.empty()) store.record_checkpoint(a.task_id(), 1, checkpoint);
    };
    started(assignment("resume", "interactive.count", R"({"steps":6,"delay_ms":5})"), "4");
    started(assignment("orphan", "hold.forever", "{}"), "");
    started(assignment("was-canceled", "hold.forever", "{}"), "");
    store.record_cancel_request("was-canceled");
    REQUIRE(store.insert_task(assignment("queued", "hello.greet", R"({"name":"Q"})")));
    started(assignment("steered", "interactive.count", R"({"steps":30,"delay_ms":20})"), "1");
    v1::SteeringMessage m;
    m.set_message_id("m-1");
    m.set_task_id("steered");
    m.add_parts()->set_text("still there?");
    REQUIRE(store.insert_message(m));  // recorded, never answered
  }
  Node node(dir.path);
  CHECK(node.report.reattached == 2);
  CHECK(node.report.orphaned == 1);  // hold.forever cannot re-attach
  CHECK(node.report.restarted == 1);
  CHECK(node.report.canceled == 1);
  CHECK(node.report.redelivered == 1);

  auto resume = wait_ended(node.transport, "resume");
  REQUIRE(resume);
  CHECK(resume->state() == v1::SUCCEEDED);
  CHECK(resume->attempt() == 2);
  CHECK(resume->completion().output().struct_value().fields().at("resumed_from").number_value() == 4);

  auto orphan = wait_ended(node.transport, "orphan");
  REQUIRE(orphan);
  CHECK(orphan->state() == v1::FAILED);
  CHECK(orphan->completion().error().kind() == "orphaned");

  auto canceled = wait_ended(node.transport, "was-canceled");
  REQUIRE(canceled);
  CHECK(canceled->state() == v1::CANCELED);

  auto queued = wait_ended(node.transport, "queued");
  REQUIRE(queued);
  CHECK(queued->state() == v1::SUCCEEDED);
  CHECK(queued->attempt() == 1);

  auto steered = wait_ended(node.transport, "steered");
  REQUIRE(steered);
  bool echoed = false;
  for (const auto& item : node.transport.watch("steered", [] {})->take()) {
    if (item.has_event() && item.event().has_message() && item.event().message().text() == "echo: still there?") echoed = true;
  }
  CHECK(echoed);
  node.transport.store().flush();
  const auto msgs = node.transport.store().messages("steered");
  REQUIRE(msgs.size() == 1);
  CHECK(msgs[0].answered);
}
