// What a NATS client reports for a task, from its record, latest events and completion.
#include "transport/nats/status_view.hpp"

#include <doctest/doctest.h>

using namespace taskhost;
using namespace taskhost::transport::nats;

namespace {

v1::WatchItem state_event(uint32_t attempt, v1::TaskState s, const std::string& worker) {
  v1::WatchItem i;
  auto* e = i.mutable_event();
  e->set_task_id("t");
  e->set_attempt(attempt);
  e->set_kind("k");
  e->set_worker_id(worker);
  e->set_unix_ms(1000 + attempt);
  e->mutable_state()->set_state(s);
  e->mutable_state()->set_detail("d");
  return i;
}

}  // namespace

TEST_CASE("nothing known is no status") {
  CHECK_FALSE(status_view("t", std::nullopt, {}, {}));
}

TEST_CASE("a queued record reads as pending; a held one as running on its owner") {
  TaskRecord r;
  r.task_id = "t";
  r.kind = "k";
  r.attempt = 1;
  auto s = status_view("t", r, {}, {});
  REQUIRE(s);
  CHECK(s->state() == v1::PENDING);
  r.owner = "w1";
  s = status_view("t", r, {}, {});
  CHECK(s->state() == v1::RUNNING);
  CHECK(s->worker_id() == "w1");
}

TEST_CASE("events of the current attempt refine the record; older attempts are ignored") {
  TaskRecord r;
  r.task_id = "t";
  r.kind = "k";
  r.owner = "w2";
  r.attempt = 2;
  v1::WatchItem progress;
  progress.mutable_event()->set_attempt(2);
  progress.mutable_event()->mutable_progress()->set_current(4);
  progress.mutable_event()->mutable_progress()->set_total(5);
  v1::WatchItem ask;
  ask.mutable_event()->set_attempt(2);
  ask.mutable_event()->mutable_input_request()->set_request_id("q1");
  ask.mutable_event()->mutable_input_request()->set_prompt("sure?");
  auto s = status_view("t", r, {state_event(1, v1::FAILED, "w1"), progress, state_event(2, v1::WAITING_INPUT, "w2"), ask}, {});
  REQUIRE(s);
  CHECK(s->state() == v1::WAITING_INPUT);
  CHECK(s->progress().current() == 4);
  CHECK(s->pending_request_id() == "q1");
  CHECK(s->worker_id() == "w2");
}

TEST_CASE("the completion is the final word") {
  v1::WatchItem c;
  c.mutable_completion()->set_task_id("t");
  c.mutable_completion()->set_state(v1::FAILED);
  c.mutable_completion()->set_attempt(2);
  c.mutable_completion()->set_worker_id("w3");
  c.mutable_completion()->mutable_error()->set_message("boom");
  auto s = status_view("t", std::nullopt, {}, {state_event(2, v1::RUNNING, "w3"), c});
  REQUIRE(s);
  CHECK(s->state() == v1::FAILED);
  CHECK(s->detail() == "boom");
  CHECK(s->has_completion());
  CHECK(s->worker_id() == "w3");
}
