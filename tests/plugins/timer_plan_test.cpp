// The timer.wait schedule arithmetic and checkpoint format (plugins/timer/timer_plan.cpp, linked in).
#include <doctest/doctest.h>

#include "plugin_test_support.hpp"
#include "timer/timer_plan.hpp"

using namespace timer_plugin;
using plugin_tests::contains;

TEST_CASE("steps_done_at is exactly the number of steps due, including spans shorter than the step count") {
  for (const int64_t span : {0, 1, 3, 7, 10, 999, 1000, 86'400'000}) {
    for (const int steps : {1, 2, 3, 7, 10, 100}) {
      CAPTURE(span);
      CAPTURE(steps);
      const TimerPlan plan{1'000'000, 1'000'000 + span, steps};
      CHECK(plan.step_due(steps) == plan.deadline_ms);
      CHECK(plan.steps_done_at(plan.started_ms - 1) == 0);
      CHECK(plan.steps_done_at(plan.deadline_ms) == steps);
      for (int i = 1; i <= steps; ++i) {
        CHECK(plan.step_due(i) >= plan.step_due(i - 1));
        CHECK(plan.steps_done_at(plan.step_due(i)) >= i);  // at its due time a step counts as done
        // Just before its due time it does not (unless an earlier step shares the instant).
        if (plan.step_due(i) > plan.step_due(i - 1)) CHECK(plan.steps_done_at(plan.step_due(i) - 1) == i - 1);
      }
    }
  }
}

TEST_CASE("a checkpoint round-trips, and anything this plugin did not write is refused naming the checkpoint") {
  const TimerPlan plan{1'700'000'000'000, 1'700'000'060'000, 12};
  TimerPlan back;
  REQUIRE(decode_checkpoint(encode_checkpoint(plan), &back).ok());
  CHECK(back.started_ms == plan.started_ms);
  CHECK(back.deadline_ms == plan.deadline_ms);
  CHECK(back.steps == plan.steps);

  for (const char* bad : {"", "7", R"({"v":2,"started_ms":1,"deadline_ms":2,"steps":1})",
                          R"({"v":1,"started_ms":5,"deadline_ms":2,"steps":1})",
                          R"({"v":1,"started_ms":1,"steps":1})", R"({"v":1,"started_ms":1,"deadline_ms":2,"steps":0})"}) {
    CAPTURE(bad);
    const auto s = decode_checkpoint(bad, &back);
    CHECK(s.code == TH_INVALID_ARGUMENT);
    CHECK(contains(s.message, "checkpoint"));
  }
}

TEST_CASE("the input: steps defaults to 1, an integral 5.0 is an integer, fractions and strangers are refused") {
  TimerInput in;
  REQUIRE(parse_timer_input(R"({"ms":250})", &in).ok());
  CHECK(in.ms == 250);
  CHECK(in.steps == 1);
  REQUIRE(parse_timer_input(R"({"ms":5.0,"steps":3e0})", &in).ok());
  CHECK(in.ms == 5);
  CHECK(in.steps == 3);
  CHECK(contains(parse_timer_input(R"({"ms":5.5})", &in).message, "'ms'"));
  CHECK(contains(parse_timer_input(R"({"ms":1,"steps":10001})", &in).message, "'steps'"));
  CHECK(contains(parse_timer_input(R"({"ms":1,"extra":1})", &in).message, "'extra'"));
  CHECK(contains(parse_timer_input("not json", &in).message, "not valid JSON"));
}
