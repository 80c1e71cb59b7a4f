// The router end to end: a real Host loads the scripted fixture .so, and every path of protocol.md §2
// runs through the real loader, registry, router, strands, sink and timer.
#include "eventually.hpp"
#include "host_fixture.hpp"

#include "tasks/lifecycle.hpp"

#include <sys/resource.h>

#include <fstream>
#include <map>
#include <thread>

using namespace taskhost;
using namespace taskhost::testing;
using namespace std::chrono_literals;

namespace {

// Starts a test.hold task `id`, sends it the fixture's `script` and returns how it ended.
std::optional<v1::TaskCompletion> held_task_after(HostFixture& f, const std::string& id, const std::string& script) {
  REQUIRE(f.router().assign(assignment(id, "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state(id, v1::RUNNING));
  f.router().deliver(message(id, script));
  return f.outbox.wait_completion(id);
}

// Starts a test.hold task `id` and has it ask its question "q1": it waits for input on return.
void held_task_asking(HostFixture& f, const std::string& id) {
  REQUIRE(f.router().assign(assignment(id, "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state(id, v1::RUNNING));
  f.router().deliver(message(id, "ask"));
  REQUIRE(f.outbox.wait_state(id, v1::WAITING_INPUT));
}
}  // namespace

TEST_CASE("a task completes through the plugin, with events in order and the generation that ran it") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("t1", "test.instant", R"({"x":1})")).accepted());
  auto c = f.outbox.wait_completion("t1");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(value_json(c->output()) == R"({"x":1})");
  CHECK(c->generation() != 0);
  CHECK(c->plugin_version() == "1.0.0");
  CHECK(c->kind() == "test.instant");

  auto events = f.outbox.events_of("t1");
  std::vector<v1::TaskState> states;
  uint64_t last_seq = 0;
  for (const auto& e : events) {
    CHECK(e.seq() > last_seq);
    last_seq = e.seq();
    if (e.has_state()) states.push_back(e.state().state());
  }
  CHECK(states == std::vector<v1::TaskState>{v1::PENDING, v1::RUNNING, v1::SUCCEEDED});
  CHECK(f.router().wait_idle(5s));
  auto snap = f.router().snapshot("t1");
  REQUIRE(snap);
  CHECK(snap->state == v1::SUCCEEDED);
}

TEST_CASE("an unknown kind is COMPONENT_NOT_FOUND, answered twice, and other kinds keep serving") {
  HostFixture f;
  auto out = f.router().assign(assignment("u1", "no.such.kind"));
  CHECK(out.result == tasks::AssignOutcome::Result::rejected);
  CHECK(out.code == v1::COMPONENT_NOT_FOUND);
  CHECK(out.message.find("no.such.kind") != std::string::npos);
  auto c = f.outbox.wait_completion("u1");
  REQUIRE(c);
  CHECK(c->error().code() == v1::COMPONENT_NOT_FOUND);
  REQUIRE(f.router().assign(assignment("ok", "test.instant", "1")).accepted());
  CHECK(f.outbox.wait_completion("ok")->state() == v1::SUCCEEDED);
}

TEST_CASE("malformed assignments are INVALID_INPUT naming the field") {
  HostFixture f;
  v1::TaskAssignment no_id = assignment("", "test.instant");
  auto r1 = f.router().assign(no_id);
  CHECK(r1.code == v1::INVALID_INPUT);
  CHECK(r1.message.find("task_id") != std::string::npos);

  v1::TaskAssignment no_task;
  no_task.set_task_id("m2");
  auto r2 = f.router().assign(no_task);
  CHECK(r2.code == v1::INVALID_INPUT);
  CHECK(r2.message.find("execute") != std::string::npos);

  auto r3 = f.router().assign(assignment("m3", ""));
  CHECK(r3.code == v1::INVALID_INPUT);
  CHECK(r3.message.find("component_id") != std::string::npos);
  CHECK(f.router().active_count() == 0);
}

TEST_CASE("an attempt past 2^31-1 is INVALID_INPUT: a re-attach adds one, and a wrapped attempt would lose to its past") {
  // QA published attempt 4294967295 on NATS: a rescue re-attached it as attempt 0, and the stale host,
  // at the larger number, then won the conflict against the live one.
  HostFixture f;
  v1::TaskAssignment huge = assignment("huge", "test.instant", "1");
  huge.mutable_execute()->set_attempt(0xFFFF'FFFFu);
  auto r = f.router().assign(huge);
  CHECK(r.code == v1::INVALID_INPUT);
  CHECK(r.message.find("field 'execute.attempt' is 4294967295, more than 2147483647") != std::string::npos);
  auto c = f.outbox.wait_completion("huge");
  REQUIRE(c);
  CHECK(c->error().code() == v1::INVALID_INPUT);

  v1::TaskAssignment largest = assignment("largest", "test.instant", "1");
  largest.mutable_execute()->set_attempt(0x7FFF'FFFFu);
  REQUIRE(f.router().assign(largest).accepted());
  CHECK(f.outbox.wait_completion("largest")->state() == v1::SUCCEEDED);
}

TEST_CASE("steering reaches the running task in order and a finish message ends it") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("s1", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("s1", v1::RUNNING));
  auto r = f.router().deliver(message("s1", "hello"));
  CHECK(r.outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.outbox.wait_message("s1", "echo:hello"));
  CHECK(f.router().deliver(message("s1", "progress")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.router().deliver(message("s1", "finish")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  auto c = f.outbox.wait_completion("s1");
  REQUIRE(c);
  CHECK(value_json(c->output()) == R"("finished attempt 1")");
  bool saw_progress = false;
  for (const auto& e : f.outbox.events_of("s1")) saw_progress |= e.has_progress() && e.progress().total() == 10;
  CHECK(saw_progress);
}

TEST_CASE("an input request moves to waiting_input and only the matching answer moves it back") {
  HostFixture f;
  held_task_asking(f, "i1");
  auto snap = f.router().snapshot("i1");
  REQUIRE(snap);
  CHECK(snap->state == v1::WAITING_INPUT);
  CHECK(snap->pending_request_id == "q1");

  auto wrong = f.router().deliver(message("i1", "nope", "q-other"));
  CHECK(wrong.outcome() == v1::DeliveryReceipt::REJECTED);
  CHECK(wrong.detail().find("q1") != std::string::npos);

  auto right = f.router().deliver(message("i1", "yes", "q1"));
  CHECK(right.outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.outbox.wait_message("i1", "answer:yes"));
  CHECK(f.router().snapshot("i1")->state == v1::RUNNING);
  f.router().deliver(message("i1", "finish"));
  CHECK(f.outbox.wait_completion("i1")->state() == v1::SUCCEEDED);
}

TEST_CASE("a question asked again under the same id while its answer is delivered stands: the task waits for it") {
  // QA: the answer's delivery then cleared the new question, left the task running with nothing pending,
  // and refused every later answer to it: only a cancel ended the task.
  HostFixture f;
  held_task_asking(f, "re1");
  CHECK(f.router().deliver(message("re1", "again", "q1")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.outbox.wait_message("re1", "answer:again"));
  auto snap = f.router().snapshot("re1");
  REQUIRE(snap);
  CHECK(snap->state == v1::WAITING_INPUT);
  CHECK(snap->pending_request_id == "q1");
  CHECK(f.router().deliver(message("re1", "yes", "q1")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.outbox.wait_message("re1", "answer:yes"));
  CHECK(f.router().snapshot("re1")->state == v1::RUNNING);
  f.router().deliver(message("re1", "finish"));
  CHECK(f.outbox.wait_completion("re1")->state() == v1::SUCCEEDED);
}

TEST_CASE("a task set running again while it waited for input withdrew its question: an answer is refused") {
  // QA: `status` (the store) showed no question, yet the host still delivered an answer to it.
  HostFixture f;
  held_task_asking(f, "wd");
  CHECK(f.router().deliver(message("wd", "resume")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  auto snap = f.router().snapshot("wd");
  REQUIRE(snap);
  CHECK(snap->state == v1::RUNNING);
  CHECK(snap->pending_request_id.empty());
  const auto late = f.router().deliver(message("wd", "yes", "q1"));
  CHECK(late.outcome() == v1::DeliveryReceipt::REJECTED);
  CHECK(late.detail().find("is not waiting for input 'q1'") != std::string::npos);
  CHECK_FALSE(f.outbox.wait_message("wd", "answer:yes", 200ms));
  f.router().deliver(message("wd", "finish"));
  CHECK(f.outbox.wait_completion("wd")->state() == v1::SUCCEEDED);
}

TEST_CASE("a kind without on_deliver cannot ask for input: request_input answers UNSUPPORTED") {
  // QA: the task went to waiting_input for good, every answer refused UNSUPPORTED, until a cancel.
  HostFixture f;
  REQUIRE(f.router().assign(assignment("noask", "test.instant", R"("ask-first")")).accepted());
  const auto c = f.outbox.wait_completion("noask");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(c->output().string_value() == "request_input:" + std::to_string(TH_UNSUPPORTED));
  for (const auto& e : f.outbox.events_of("noask")) CHECK_FALSE(e.has_input_request());
}

TEST_CASE("an answer ahead of its question waits for it; once the task has asked, a stray answer is refused") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("a1", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("a1", v1::RUNNING));
  // Sent before the task asked (as a durable answer replayed to a re-attached attempt is): held.
  auto early = f.router().deliver(message("a1", "yes", "q1"));
  CHECK(early.outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(early.queued());
  CHECK(early.detail().find("'q1'") != std::string::npos);
  auto typo = f.router().deliver(message("a1", "maybe", "q-never"));
  CHECK(typo.queued());
  // The task asks for q1: the held answer is delivered at once and the task runs on.
  f.router().deliver(message("a1", "ask"));
  CHECK(f.outbox.wait_message("a1", "answer:yes"));
  const auto final_receipt = f.outbox.wait_delivery(early.message_id());
  REQUIRE(final_receipt);
  CHECK(final_receipt->outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK_FALSE(final_receipt->queued());
  CHECK(eventually([&] { return f.router().snapshot("a1")->state == v1::RUNNING; }));
  // The attempt has asked: an answer to a request it is not waiting for is a duplicate or a typo.
  auto again = f.router().deliver(message("a1", "yes again", "q1"));
  CHECK(again.outcome() == v1::DeliveryReceipt::REJECTED);
  f.router().deliver(message("a1", "finish"));
  REQUIRE(f.outbox.wait_completion("a1"));
  // The answer to the question never asked is reported, in the task's events and as its final receipt.
  const auto never = f.outbox.wait_delivery(typo.message_id());
  REQUIRE(never);
  CHECK(never->outcome() == v1::DeliveryReceipt::TASK_ENDED);
  CHECK(never->detail().find("'q-never'") != std::string::npos);
  bool said = false;
  for (const auto& e : f.outbox.events_of("a1")) {
    said |= e.has_state() && e.state().detail().find("'q-never', which the task did not ask for") != std::string::npos;
  }
  CHECK(said);
}

TEST_CASE("cancel is cooperative; messages and cancels for ended or unknown tasks get a clear answer") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("c1", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("c1", v1::RUNNING));
  CHECK(f.router().cancel(cancel_request("c1")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  auto c = f.outbox.wait_completion("c1");
  REQUIRE(c);
  CHECK(c->state() == v1::CANCELED);
  CHECK(c->error().code() == v1::CANCELLED);
  CHECK(f.router().wait_idle(5s));

  auto again = f.router().cancel(cancel_request("c1"));
  CHECK(again.outcome() == v1::DeliveryReceipt::TASK_ENDED);
  auto late = f.router().deliver(message("c1", "hello"));
  CHECK(late.outcome() == v1::DeliveryReceipt::TASK_ENDED);
  CHECK(late.detail().find("c1") != std::string::npos);
  auto unknown = f.router().deliver(message("ghost", "hello"));
  CHECK(unknown.outcome() == v1::DeliveryReceipt::UNKNOWN_TASK);
  CHECK(unknown.detail().find("ghost") != std::string::npos);
  CHECK(f.router().cancel(cancel_request("ghost")).outcome() == v1::DeliveryReceipt::UNKNOWN_TASK);
  CHECK(f.outbox.completion_count("c1") == 1);
}

TEST_CASE("a task that ignores cancel ends canceled at the host's deadline") {
  tasks::RouterOptions o;
  o.cancel_deadline = 200ms;
  HostFixture f(o);
  REQUIRE(f.router().assign(assignment("d1", "test.hold", R"("ignore-cancel")")).accepted());
  REQUIRE(f.outbox.wait_state("d1", v1::RUNNING));
  f.router().cancel(cancel_request("d1"));
  auto c = f.outbox.wait_completion("d1", 5s);
  REQUIRE(c);
  CHECK(c->state() == v1::CANCELED);
  CHECK(c->error().kind() == "deadline");
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("reconcile calls the plugin; defaults answer no-op success and unsupported") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("r1", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("r1", v1::RUNNING));
  CHECK(f.router().reconcile("r1").outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.outbox.wait_message("r1", "reconciled"));

  REQUIRE(f.router().assign(assignment("p1", "test.plain")).accepted());
  REQUIRE(f.outbox.wait_state("p1", v1::RUNNING));
  CHECK(f.router().reconcile("p1").outcome() == v1::DeliveryReceipt::ACCEPTED);  // NULL reconcile = no-op
  auto steer = f.router().deliver(message("p1", "hello"));
  CHECK(steer.outcome() == v1::DeliveryReceipt::UNSUPPORTED);
  CHECK(f.router().cancel(cancel_request("p1")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.router().cancel(cancel_request("r1")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("re-attach starts with the checkpoint and the bumped attempt; a kind that cannot is orphaned") {
  HostFixture f;
  tasks::Resume resume{true, "step-3"};
  REQUIRE(f.router().assign(assignment("ra", "test.hold", "null", 2), resume).accepted());
  CHECK(f.outbox.wait_message("ra", "resumed:step-3:attempt=2"));

  REQUIRE(f.router().assign(assignment("rb", "test.hold", R"("no-reattach")", 2), resume).accepted());
  auto rb = f.outbox.wait_completion("rb");
  REQUIRE(rb);
  CHECK(rb->state() == v1::FAILED);
  CHECK(rb->error().kind() == "orphaned");

  REQUIRE(f.router().assign(assignment("rc", "test.plain", "null", 2), resume).accepted());
  auto rc = f.outbox.wait_completion("rc");
  REQUIRE(rc);
  CHECK(rc->error().kind() == "orphaned");
  f.router().deliver(message("ra", "finish"));
  CHECK(value_json(f.outbox.wait_completion("ra")->output()) == R"("finished attempt 2")");
}

TEST_CASE("sink writes after the task ended are dropped with TASK_ENDED, never a crash or a second completion") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("z1", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("z1", v1::RUNNING));
  f.router().deliver(message("z1", "finish"));
  REQUIRE(f.outbox.wait_completion("z1"));
  REQUIRE(f.router().wait_idle(5s));

  REQUIRE(f.router().assign(assignment("z2", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("z2", v1::RUNNING));
  f.router().deliver(message("z2", "probe:z1"));
  auto report = f.outbox.wait_message("z2", "probe:");
  REQUIRE(report);
  CHECK(*report == "probe:TASK_ENDED,TASK_ENDED,TASK_ENDED");
  CHECK(f.outbox.completion_count("z1") == 1);
  f.router().cancel(cancel_request("z2"));
}

TEST_CASE("a plugin that succeeds with unreadable output fails the task, naming why") {
  HostFixture f;
  auto c = held_task_after(f, "b1", "bad-output");
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->error().code() == v1::WORKER_ERROR);
  CHECK(c->error().message().find("b1") != std::string::npos);
}

TEST_CASE("a plugin call that lets a C++ exception out fails the task, naming its kind, and frees its slot") {
  HostFixture f;
  auto c = held_task_after(f, "ex", "throw");
  REQUIRE(c);
  CHECK(c->state() == v1::FAILED);
  CHECK(c->error().code() == v1::WORKER_ERROR);
  CHECK(c->error().kind() == "exception");
  CHECK(c->error().message().find("kind 'test.hold' threw an exception (thrown by the fixture)") != std::string::npos);
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("plugin text that is not UTF-8 reaches the events readable, broken bytes shown as U+FFFD") {
  HostFixture f;
  auto c = held_task_after(f, "u8", "broken-utf8");
  REQUIRE(c);
  CHECK(c->error().message() == "bad \xEF\xBF\xBD message");
  bool progress = false, artifact = false;
  for (const auto& e : f.outbox.events_of("u8")) {
    // protobuf refuses to read back a string field that is not UTF-8: every event must round-trip whole.
    v1::TaskEvent back;
    REQUIRE(back.ParseFromString(e.SerializeAsString()));
    if (back.has_progress()) {
      progress = true;
      CHECK(back.progress().unit() == "it\xEF\xBF\xBD" "ems");
      CHECK(back.progress().label() == "lab\xEF\xBF\xBD");
    }
    if (back.has_artifact()) {
      artifact = true;
      CHECK(back.artifact().name() == "art\xEF\xBF\xBD");
      CHECK(back.artifact().media_type() == "text/\xEF\xBF\xBD");
      CHECK(back.artifact().uri() == "file:///kept");
    }
  }
  CHECK(progress);
  CHECK(artifact);
}

TEST_CASE("a plugin's payloads over the host's limit are refused and its text is cut; nothing grows unbounded") {
  tasks::RouterOptions options;
  options.max_plugin_payload = 100'000;
  HostFixture f(options);
  // Under the limit every payload is taken whole (a label under 64 KiB too).
  auto small = held_task_after(f, "fits", "huge:60000");
  REQUIRE(small);
  CHECK(small->state() == v1::SUCCEEDED);
  CHECK(small->output().string_value().size() == 60'000);
  CHECK(f.outbox.wait_message("fits", "huge:") == "huge:OK,OK,OK,OK");
  CHECK(f.outbox.checkpoint("fits").size() == 60'000);

  // Over it: the label is cut at 64 KiB with a note, the delta, data and checkpoint are refused, and the
  // completion fails the task "too_large" naming both sizes.
  auto big = held_task_after(f, "big", "huge:100001");
  REQUIRE(big);
  CHECK(big->state() == v1::FAILED);
  CHECK(big->error().kind() == "too_large");
  CHECK(big->error().message().find("task 'big' succeeded with an output of 100003 bytes; the host takes at most 100000") !=
        std::string::npos);
  CHECK(f.outbox.wait_message("big", "huge:") == "huge:OK,INVALID_ARGUMENT,INVALID_ARGUMENT,INVALID_ARGUMENT");
  CHECK(f.outbox.checkpoint("big").empty());
  bool label = false;
  for (const auto& e : f.outbox.events_of("big")) {
    if (!e.has_progress()) continue;
    label = true;
    CHECK(e.progress().label() == std::string(tasks::kMaxPluginText, 'x') + " [cut at 65536 bytes]");
  }
  CHECK(label);
  for (const auto& e : f.outbox.events_of("big")) CHECK_FALSE(e.has_output());
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("plugin text cut at 64 KiB is cut before a character the limit would split") {
  // QA: the cut fell inside "é", which became U+FFFD: text the plugin sent valid came out broken.
  HostFixture f;
  REQUIRE(f.router().assign(assignment("u8cut", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("u8cut", v1::RUNNING));
  f.router().deliver(message("u8cut", "long-utf8"));
  std::string label;
  CHECK(eventually([&] {
    for (const auto& e : f.outbox.events_of("u8cut")) {
      if (e.has_progress()) label = e.progress().label();
    }
    return !label.empty();
  }));
  std::string expected = "a";
  while (expected.size() + 2 <= tasks::kMaxPluginText) expected += "\xC3\xA9";
  CHECK(label == expected + " [cut at 65536 bytes]");
  CHECK(label.find("\xEF\xBF\xBD") == std::string::npos);
  f.router().deliver(message("u8cut", "finish"));
  CHECK(f.outbox.wait_completion("u8cut"));
}

TEST_CASE("a start the plugin refuses fails the task with the plugin's reason") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("rs", "test.hold", R"("reject-start")")).accepted());
  auto c = f.outbox.wait_completion("rs");
  REQUIRE(c);
  CHECK(c->error().code() == v1::INVALID_INPUT);
  CHECK(c->error().message().find("reject-start") != std::string::npos);
}

TEST_CASE("an active task id is a duplicate; discovery lists every loaded kind") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("dup", "test.hold")).accepted());
  CHECK(f.router().assign(assignment("dup", "test.hold")).result == tasks::AssignOutcome::Result::duplicate);

  v1::TaskAssignment disco;
  disco.set_task_id("disco");
  disco.mutable_list_components();
  REQUIRE(f.router().assign(disco).accepted());
  auto c = f.outbox.wait_completion("disco");
  REQUIRE(c);
  REQUIRE(c->has_components());
  std::set<std::string> kinds;
  for (const auto& info : c->components().components()) {
    kinds.insert(info.component_id());
    if (info.component_id() == "test.instant") CHECK(info.description() == "completes at once with its input");
  }
  CHECK(kinds == std::set<std::string>{"test.hold", "test.instant", "test.plain", "test.thread"});
  f.router().cancel(cancel_request("dup"));
}

TEST_CASE("limits per kind and per host: excess tasks wait as pending, in order, and steering waits with them") {
  tasks::RouterOptions o;
  o.max_active = 3;
  o.kind_limits["test.hold"] = 2;
  HostFixture f(o);
  for (int i = 0; i < 3; ++i) REQUIRE(f.router().assign(assignment("l" + std::to_string(i), "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("l0", v1::RUNNING));
  REQUIRE(f.outbox.wait_state("l1", v1::RUNNING));
  CHECK(f.router().snapshot("l2")->state == v1::PENDING);
  // Its status says why it waits, not merely "accepted".
  CHECK(f.router().snapshot("l2")->detail == "accepted; queued: kind 'test.hold' has its limit of 2 tasks running ([limits.kinds])");
  CHECK(f.outbox.events_of("l2").at(0).state().detail() == f.router().snapshot("l2")->detail);
  CHECK(f.outbox.events_of("l0").at(0).state().detail() == "accepted");
  CHECK(f.router().free_slots("test.hold") == 0);
  CHECK(f.router().free_slots("test.instant") == 0);  // the host limit counts the pending task too

  auto early = f.router().deliver(message("l2", "early"));
  CHECK(early.outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(early.detail().find("queued") != std::string::npos);

  f.router().deliver(message("l0", "finish"));
  REQUIRE(f.outbox.wait_state("l2", v1::RUNNING));
  CHECK(f.outbox.wait_message("l2", "echo:early"));
  for (auto id : {"l1", "l2"}) f.router().deliver(message(id, "finish"));
  CHECK(f.router().wait_idle(5s));
  CHECK(f.router().free_slots("test.hold") == 2);
}

TEST_CASE("a waiting task's status names the limit that holds it now, not the one that held it at first") {
  // QA: worked out once, at admission, the reason went stale: "the host has its limit" while the host had
  // room and the task's own kind limit held it.
  tasks::RouterOptions o;
  o.max_active = 2;
  o.kind_limits["test.hold"] = 1;
  HostFixture f(o);
  for (const char* id : {"p1", "p2"}) REQUIRE(f.router().assign(assignment(id, "test.plain")).accepted());
  for (const char* id : {"h1", "h2"}) REQUIRE(f.router().assign(assignment(id, "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("p2", v1::RUNNING));
  const std::string host_full = "accepted; queued: the host has its limit of 2 tasks running ([limits] max_active)";
  CHECK(f.router().snapshot("h1")->detail == host_full);
  CHECK(f.router().snapshot("h2")->detail == host_full);
  f.router().cancel(cancel_request("p1"));
  REQUIRE(f.outbox.wait_state("h1", v1::RUNNING));
  CHECK(f.router().snapshot("h2")->detail ==
        "accepted; queued: kind 'test.hold' has its limit of 1 tasks running ([limits.kinds])");
  f.router().deliver(message("h1", "finish"));
  REQUIRE(f.outbox.wait_state("h2", v1::RUNNING));
  CHECK(f.router().snapshot("h2")->detail.find("queued") == std::string::npos);
  f.router().deliver(message("h2", "finish"));
  f.router().cancel(cancel_request("p2"));
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("a batch is answered in order, each assignment as if alone, and the limits hold across it") {
  tasks::RouterOptions o;
  o.max_active = 3;
  HostFixture f(o);
  REQUIRE(f.router().assign(assignment("b-active", "test.hold")).accepted());

  v1::TaskAssignment disco;
  disco.set_task_id("b-disco");
  disco.mutable_list_components();
  const std::vector<v1::TaskAssignment> batch = {
      assignment("b0", "test.hold"),       assignment("b1", "test.hold"),
      assignment("b0", "test.hold"),       // the same id twice in one batch
      assignment("b-active", "test.hold"), // an id already active before the batch
      assignment("b2", "no.such.kind"),    assignment("", "test.hold"),
      disco,                               assignment("b3", "test.instant", R"({"x":3})"),
  };
  const auto out = f.router().assign_batch(batch);
  REQUIRE(out.size() == batch.size());
  using R = tasks::AssignOutcome::Result;
  CHECK(out[0].accepted());
  CHECK(out[1].accepted());
  CHECK(out[2].result == R::duplicate);
  CHECK(out[3].result == R::duplicate);
  CHECK(out[4].code == v1::COMPONENT_NOT_FOUND);
  CHECK(out[4].message.find("no.such.kind") != std::string::npos);
  CHECK(out[5].code == v1::INVALID_INPUT);
  CHECK(out[6].accepted());
  CHECK(out[7].accepted());

  // b-active, b0 and b1 hold the three slots; b3 waits as pending, in order, and runs once one frees.
  REQUIRE(f.outbox.wait_state("b0", v1::RUNNING));
  REQUIRE(f.outbox.wait_state("b1", v1::RUNNING));
  CHECK(f.router().snapshot("b3")->state == v1::PENDING);
  CHECK(f.router().snapshot("b3")->detail == "accepted; queued: the host has its limit of 3 tasks running ([limits] max_active)");
  CHECK(f.outbox.wait_completion("b2")->error().code() == v1::COMPONENT_NOT_FOUND);
  CHECK(f.outbox.wait_completion("b-disco")->has_components());
  f.router().deliver(message("b0", "finish"));
  auto c = f.outbox.wait_completion("b3");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(value_json(c->output()) == R"({"x":3})");
  std::vector<v1::TaskState> states;
  for (const auto& e : f.outbox.events_of("b3")) {
    if (e.has_state()) states.push_back(e.state().state());
  }
  CHECK(states == std::vector<v1::TaskState>{v1::PENDING, v1::RUNNING, v1::SUCCEEDED});
  for (auto id : {"b-active", "b1"}) f.router().deliver(message(id, "finish"));
  CHECK(f.router().wait_idle(5s));
  int b0_completions = 0;
  for (const auto& done : f.outbox.completions()) b0_completions += done.task_id() == "b0" ? 1 : 0;
  CHECK(b0_completions == 1);  // the duplicate in the batch never ran a second time
}

TEST_CASE("a plugin call that blocks does not stall other tasks: the pool grows past its core") {
  tasks::RouterOptions o;
  o.worker_threads = 1;  // one core thread: without growth, everything waits for the blocked call
  o.max_worker_threads = 3;
  HostFixture f(o);
  REQUIRE(f.router().assign(assignment("blocker", "test.hold", R"("slow-start")")).accepted());  // 1.5 s in on_start
  REQUIRE(f.outbox.wait_state("blocker", v1::PENDING));
  std::this_thread::sleep_for(50ms);  // the blocker is inside on_start on the only core thread
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(f.router().assign(assignment("quick", "test.instant", R"({"q":1})")).accepted());
  auto c = f.outbox.wait_completion("quick", 5s);
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  // Within a few check intervals (10 ms each), far inside the blocker's 1.5 s.
  CHECK(std::chrono::steady_clock::now() - t0 < 700ms);
  CHECK(f.router().snapshot("blocker")->state != v1::SUCCEEDED);
  f.router().deliver(message("blocker", "finish"));
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("a plugin whose calls all block cannot take every pool thread: other plugins' tasks still run") {
  tasks::RouterOptions o;
  o.worker_threads = 1;
  o.max_worker_threads = 4;  // a plugin's calls get at most 3 of them
  HostFixture f(o);
  install_plugin_file(built_plugin("hello-c.so"), f.dir.path(), "hello-c.so");
  REQUIRE(f.host->plugins().scan().errors.empty());
  // Five starts of the scripted plugin, over two of its kinds, that block until the gate file exists.
  // With a share per kind, test.hold's three and test.instant's two take all 4 threads, and the other
  // plugin's task waits for the gate (the check below times out); with a share per plugin, they hold 3.
  const std::string gate = (f.dir.path() / "gate").string();
  const std::string block = "\"block-start:" + gate + "\"";
  for (int i = 0; i < 5; ++i) {
    const std::string kind = i < 3 ? "test.hold" : "test.instant";
    REQUIRE(f.router().assign(assignment("stuck-" + std::to_string(i), kind, block)).accepted());
  }
  auto starts_entered = [&] {
    uint64_t n = 0;
    for (const auto& e : f.router().stats().executors) n += e.plugin == "scripted" ? e.calls.start : 0;
    return n;
  };
  REQUIRE(eventually([&] { return starts_entered() >= 3; }, 5s));
  REQUIRE(f.router().assign(assignment("other", "hello.greet", R"({"name":"Ada"})")).accepted());
  auto c = f.outbox.wait_completion("other", 10s);
  std::ofstream(gate) << "open";
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  // Released, every blocked start returns and the parked ones run.
  for (int i = 0; i < 3; ++i) CHECK(f.outbox.wait_state("stuck-" + std::to_string(i), v1::RUNNING, 10s));
  for (int i = 3; i < 5; ++i) CHECK(f.outbox.wait_completion("stuck-" + std::to_string(i), 10s));
  for (int i = 0; i < 3; ++i) f.router().deliver(message("stuck-" + std::to_string(i), "finish"));
  CHECK(f.router().wait_idle(5s));
}

// The pool's threads spin for a moment after a call before they sleep (call_pool.hpp). An idle host must
// still be idle: a spin that never ended would burn a core per pool thread for as long as it runs.
TEST_CASE("an idle host's pool threads sleep after their brief spin") {
  tasks::RouterOptions o;
  o.worker_threads = 2;
  HostFixture f(o);
  for (int i = 0; i < 200; ++i) {
    REQUIRE(f.router().assign(assignment("idle" + std::to_string(i), "test.instant", R"({"q":1})")).accepted());
  }
  REQUIRE(f.router().wait_idle(5s));
  std::this_thread::sleep_for(100ms);  // far past the 50 us spin
  auto cpu_ms = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000.0 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000.0;
  };
  const double before = cpu_ms();
  std::this_thread::sleep_for(500ms);
  // Spinning threads would use ~1000 ms of CPU here (two of them); sleeping ones, next to nothing (the
  // pool's growth check wakes every 10 ms, the timer and the fixture a little more).
  CHECK(cpu_ms() - before < 100.0);
}

TEST_CASE("a pending task is canceled at once without reaching the plugin") {
  tasks::RouterOptions o;
  o.max_active = 1;
  HostFixture f(o);
  REQUIRE(f.router().assign(assignment("a", "test.hold")).accepted());
  REQUIRE(f.router().assign(assignment("b", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("a", v1::RUNNING));
  CHECK(f.router().cancel(cancel_request("b")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  auto c = f.outbox.wait_completion("b");
  REQUIRE(c);
  CHECK(c->state() == v1::CANCELED);
  CHECK(c->generation() == 0);  // never started on any generation
  f.router().deliver(message("a", "finish"));
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("heartbeats come from one timer even while a plugin call blocks, and stop when the task ends") {
  HostFixture f;
  // on_start blocks for 1.5 s; beats are due at 0 s and 1 s regardless.
  REQUIRE(f.router().assign(assignment("h1", "test.hold", R"("slow-start")", 1, 1)).accepted());
  CHECK(f.outbox.wait_heartbeats(2, 1400ms));
  // The task is still inside on_start: it has not reached the plugin's post-start state changes.
  for (const auto& hb : f.outbox.heartbeats()) {
    CHECK(hb.task_id() == "h1");
    CHECK(hb.worker_id() == "taskhost");
  }
  f.router().deliver(message("h1", "finish"));
  REQUIRE(f.outbox.wait_completion("h1", 5s));
  REQUIRE(f.router().wait_idle(5s));
  const size_t beats = f.outbox.heartbeats().size();
  std::this_thread::sleep_for(1500ms);
  CHECK(f.outbox.heartbeats().size() == beats);
}

TEST_CASE("a new generation takes new tasks; migrate re-attaches running ones and fences the old attempt") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("m1", "test.hold")).accepted());
  REQUIRE(f.router().assign(assignment("stay", "test.hold", R"("no-reattach")")).accepted());
  REQUIRE(f.outbox.wait_state("m1", v1::RUNNING));
  REQUIRE(f.outbox.wait_state("stay", v1::RUNNING));
  const uint64_t gen1 = f.router().snapshot("m1")->generation;

  install_plugin_file(fixture("scripted-v2.so"), f.dir.path(), "scripted.so");
  auto report = f.host->plugins().scan();
  REQUIRE_MESSAGE(report.errors.empty(), (report.errors.empty() ? "" : report.errors.front()));
  REQUIRE(report.loaded.size() == 1);

  REQUIRE(f.router().assign(assignment("new", "test.instant", "2")).accepted());
  auto fresh = f.outbox.wait_completion("new");
  REQUIRE(fresh);
  CHECK(fresh->plugin_version() == "2.0.0");
  CHECK(f.router().snapshot("m1")->generation == gen1);  // running tasks stay where they started
  CHECK(f.router().tasks_by_generation()[gen1] == 2);

  // Both are asked (can_reattach is a plugin call, answered on each task's strand); "stay" declines and
  // stays on generation 1: one moved.
  CHECK(f.router().migrate("test.hold") == 1);
  CHECK(f.outbox.wait_message("m1", "resumed:detached:attempt=2"));
  auto m1 = f.router().snapshot("m1");
  CHECK(m1->attempt == 2);
  CHECK(m1->generation != gen1);
  CHECK(m1->plugin_version == "2.0.0");

  // The old generation's executor still holds m1's attempt-1 ref: its writes are fenced.
  f.router().deliver(message("stay", "probe:m1"));
  auto probe = f.outbox.wait_message("stay", "probe:");
  REQUIRE(probe);
  CHECK(*probe == "probe:STALE_ATTEMPT,STALE_ATTEMPT,STALE_ATTEMPT");

  f.router().deliver(message("m1", "finish"));
  auto c = f.outbox.wait_completion("m1");
  REQUIRE(c);
  CHECK(value_json(c->output()) == R"("finished attempt 2")");
  CHECK(c->plugin_version() == "2.0.0");
  CHECK(f.router().tasks_by_generation()[gen1] == 1);
  CHECK(f.router().cancel_generation(gen1, "drain deadline") == 1);
  auto stay = f.outbox.wait_completion("stay");
  REQUIRE(stay);
  CHECK(stay->plugin_version() == "1.0.0");
  CHECK(stay->state() == v1::CANCELED);
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("a task with a cancel pending is not migrated to a new attempt: it ends canceled") {
  HostFixture f;  // cancel deadline: the default 10 s, longer than this test waits
  REQUIRE(f.router().assign(assignment("stubborn", "test.hold", R"("ignore-cancel")")).accepted());
  REQUIRE(f.outbox.wait_state("stubborn", v1::RUNNING));
  REQUIRE(f.router().cancel(cancel_request("stubborn"), 10s).outcome() == v1::DeliveryReceipt::ACCEPTED);
  install_plugin_file(fixture("scripted-v2.so"), f.dir.path(), "scripted.so");
  REQUIRE(f.host->plugins().scan().errors.empty());
  // The deadline it has is for attempt 1: started again as attempt 2 it would never end.
  CHECK(f.router().migrate("test.hold") == 1);
  const auto c = f.outbox.wait_completion("stubborn", 5s);
  REQUIRE(c);
  CHECK(c->state() == v1::CANCELED);
  CHECK(c->attempt() == 1);
  CHECK_MESSAGE(c->error().message().find("canceled while it was being re-attached") != std::string::npos,
                c->error().message());
  CHECK_FALSE(f.outbox.wait_message("stubborn", "resumed:", 200ms));
}

TEST_CASE("a span with NULL data and a size is refused, not taken as empty; the task keeps running") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("nd", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("nd", v1::RUNNING));
  f.router().deliver(message("nd", "null-data"));
  const auto report = f.outbox.wait_message("nd", "null-data:");
  REQUIRE(report);
  CHECK(*report == "null-data:INVALID_ARGUMENT,INVALID_ARGUMENT,INVALID_ARGUMENT,INVALID_ARGUMENT");
  CHECK(f.router().snapshot("nd")->state == v1::RUNNING);  // the bogus completion ended nothing
  f.router().deliver(message("nd", "finish"));
  const auto c = f.outbox.wait_completion("nd");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
}

TEST_CASE("progress and heartbeats that are not finite numbers in range, and a schema that is not JSON, are refused") {
  HostFixture f;
  REQUIRE(f.router().assign(assignment("bn", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("bn", v1::RUNNING));
  f.router().deliver(message("bn", "bad-numbers"));
  const auto report = f.outbox.wait_message("bn", "bad-numbers:");
  REQUIRE(report);
  CHECK(*report == "bad-numbers:INVALID_ARGUMENT,INVALID_ARGUMENT,INVALID_ARGUMENT,INVALID_ARGUMENT,"
                   "INVALID_ARGUMENT,OK,OK,OK,OK");
  // Only the good calls left a trace: one progress event (3 of unknown), one question (q-good, with its schema).
  std::vector<v1::TaskEvent> progress, questions;
  for (const auto& e : f.outbox.events_of("bn")) {
    if (e.has_progress()) progress.push_back(e);
    if (e.has_input_request()) questions.push_back(e);
  }
  REQUIRE(progress.size() == 1);
  CHECK(progress[0].progress().current() == 3);
  REQUIRE(questions.size() == 1);
  CHECK(questions[0].input_request().request_id() == "q-good");
  CHECK(questions[0].input_request().expected_schema() == R"({"type":"string"})");
  f.router().cancel(cancel_request("bn"));
  REQUIRE(f.outbox.wait_completion("bn"));
}

TEST_CASE("a plugin cannot write to a task another generation runs, whatever ref it makes up") {
  // Refs are plain numbers. Each generation's factories got a host table of their own, so the sink
  // knows who calls: a ref of another plugin's live task is answered as unknown, and nothing is written.
  HostFixture f;
  REQUIRE(f.router().assign(assignment("victim", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("victim", v1::RUNNING));
  f.router().deliver(message("victim", "whoami"));
  const auto ref = f.outbox.wait_message("victim", "ref:");
  REQUIRE(ref);

  install_plugin_file(fixture("scripted-v2.so"), f.dir.path(), "scripted.so");
  auto report = f.host->plugins().scan();
  REQUIRE_MESSAGE(report.errors.empty(), (report.errors.empty() ? "" : report.errors.front()));
  REQUIRE(f.router().assign(assignment("raider", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("raider", v1::RUNNING));
  CHECK(f.router().snapshot("raider")->generation != f.router().snapshot("victim")->generation);

  f.router().deliver(message("raider", "raid:" + ref->substr(4)));
  const auto raid = f.outbox.wait_message("raider", "raid:");
  REQUIRE(raid);
  CHECK(*raid == "raid:UNKNOWN_TASK,UNKNOWN_TASK,UNKNOWN_TASK");
  CHECK(f.router().snapshot("victim")->state == v1::RUNNING);
  f.router().deliver(message("victim", "finish"));
  const auto c = f.outbox.wait_completion("victim");
  REQUIRE(c);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(value_json(c->output()) == R"("finished attempt 1")");
  f.router().deliver(message("raider", "finish"));
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("drain finishes what it can, then cancels the rest; new work is refused") {
  tasks::RouterOptions o;
  o.cancel_deadline = 300ms;
  HostFixture f(o);
  REQUIRE(f.router().assign(assignment("dr", "test.hold")).accepted());
  REQUIRE(f.outbox.wait_state("dr", v1::RUNNING));
  f.router().drain(200ms);
  const auto c = f.outbox.wait_completion("dr");
  REQUIRE(c);
  CHECK(c->state() == v1::CANCELED);
  // The plugin's own words, then why the host canceled it.
  CHECK(c->error().message() == "canceled by request (host taskhost is shutting down)");
  auto refused = f.router().assign(assignment("late", "test.instant"));
  CHECK(refused.code == v1::RESOURCE_UNAVAILABLE);
  CHECK(f.router().free_slots("test.instant") == 0);
}

TEST_CASE("shutdown with running tasks releases them without completing them, so a transport can re-attach") {
  auto f = std::make_unique<HostFixture>();
  REQUIRE(f->router().assign(assignment("keep", "test.hold")).accepted());
  REQUIRE(f->outbox.wait_state("keep", v1::RUNNING));
  f->host.reset();
  CHECK(f->outbox.completion_count("keep") == 0);
}

TEST_CASE("stats count every call into each kind executor exactly, and the timer's lateness") {
  HostFixture f;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(f.router().assign(assignment("n" + std::to_string(i), "test.instant", "1")).accepted());
  }
  REQUIRE(f.router().assign(assignment("sh", "test.hold", "null", 1, 1)).accepted());
  REQUIRE(f.outbox.wait_state("sh", v1::RUNNING));
  CHECK(f.router().deliver(message("sh", "progress")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.router().reconcile("sh").outcome() == v1::DeliveryReceipt::ACCEPTED);
  CHECK(f.outbox.wait_heartbeats(1, 2s));
  const auto busy = f.router().stats();
  CHECK(busy.active >= 1);
  CHECK(busy.started >= 1);
  CHECK(f.router().cancel(cancel_request("sh")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  REQUIRE(f.router().wait_idle(5s));

  const auto s = f.router().stats();
  CHECK(s.active == 0);
  CHECK(s.pending == 0);
  CHECK(s.started == 0);
  std::map<std::string, plugin::CallCounts> by_kind;
  for (const auto& e : s.executors) {
    CHECK(e.generation != 0);
    CHECK(e.plugin_version == "1.0.0");
    by_kind[e.kind] = e.calls;
  }
  REQUIRE(by_kind.count("test.instant"));
  CHECK(by_kind["test.instant"].start == 3);
  CHECK(by_kind["test.instant"].total() == 3);  // no on_release: not counted, nothing crossed
  const auto& hold = by_kind["test.hold"];
  CHECK(hold.start == 1);
  CHECK(hold.deliver == 1);
  CHECK(hold.reconcile == 1);
  CHECK(hold.cancel == 1);
  CHECK(hold.release == 1);
  CHECK(by_kind["test.thread"].total() == 0);
  CHECK(s.timer_lateness_seconds >= 0);
  CHECK(s.timer_lateness_max_seconds >= s.timer_lateness_seconds);
  CHECK(s.timer_lateness_max_seconds < 5);
}

TEST_CASE("the finished-task memory keeps the newest ended tasks and still refuses their duplicates") {
  tasks::RouterOptions o;
  o.finished_memory = 3;
  HostFixture f(o);
  for (int i = 0; i < 5; ++i) {
    const std::string id = "m" + std::to_string(i);
    REQUIRE(f.router().assign(assignment(id, "test.instant", "1")).accepted());
    REQUIRE(f.outbox.wait_completion(id));
    REQUIRE(f.router().wait_idle(5s));
  }
  CHECK_FALSE(f.router().snapshot("m0"));
  CHECK_FALSE(f.router().snapshot("m1"));
  std::vector<std::string> ids;
  for (const auto& s : f.router().snapshots()) ids.push_back(s.task_id);
  CHECK(ids == std::vector<std::string>{"m2", "m3", "m4"});  // oldest first
  CHECK(f.router().assign(assignment("m3", "test.instant", "1")).result == tasks::AssignOutcome::Result::duplicate);
  // A later attempt of a remembered task runs, and replaces its entry in place.
  REQUIRE(f.router().assign(assignment("m2", "test.instant", "1", 2)).accepted());
  REQUIRE(f.router().wait_idle(5s));
  CHECK(f.router().snapshot("m2")->attempt == 2);
  ids.clear();
  for (const auto& s : f.router().snapshots()) ids.push_back(s.task_id);
  CHECK(ids == std::vector<std::string>{"m2", "m3", "m4"});
}
