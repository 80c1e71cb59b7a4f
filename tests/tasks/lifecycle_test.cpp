#include "tasks/lifecycle.hpp"
#include "tasks/task_ref.hpp"

#include <doctest/doctest.h>

using namespace taskhost;
using namespace taskhost::tasks;

TEST_CASE("terminal states are final") {
  for (auto from : {v1::SUCCEEDED, v1::FAILED, v1::CANCELED}) {
    for (auto to : {v1::PENDING, v1::RUNNING, v1::WAITING_INPUT, v1::SUCCEEDED, v1::FAILED, v1::CANCELED}) {
      CHECK_FALSE(transition_allowed(from, to));
    }
  }
}

TEST_CASE("running and waiting_input move both ways; pending only forward") {
  CHECK(transition_allowed(v1::PENDING, v1::RUNNING));
  CHECK(transition_allowed(v1::RUNNING, v1::WAITING_INPUT));
  CHECK(transition_allowed(v1::WAITING_INPUT, v1::RUNNING));
  CHECK_FALSE(transition_allowed(v1::PENDING, v1::WAITING_INPUT));
  CHECK_FALSE(transition_allowed(v1::RUNNING, v1::PENDING));
  CHECK(transition_allowed(v1::PENDING, v1::CANCELED));
}

TEST_CASE("task refs carry the serial and fence other attempts") {
  const th_task_ref r = make_task_ref(42, 3);
  CHECK(ref_serial(r) == 42);
  CHECK(ref_matches_attempt(r, 3));
  CHECK_FALSE(ref_matches_attempt(r, 4));
  CHECK(from_abi_state(99) == std::nullopt);
  CHECK(from_abi_state(TH_STATE_WAITING_INPUT) == v1::WAITING_INPUT);
}
