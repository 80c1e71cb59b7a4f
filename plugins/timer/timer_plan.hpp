// timer.wait: the schedule of one timer, its input and its checkpoint.
//
// A timer is anchored in wall-clock time (ms since the Unix epoch), not in a steady clock of one process:
// the checkpoint must still mean the same instant when another worker, or a reloaded plugin, re-attaches
// the task, so the task ends at the deadline it was given however often it moves.
//
// Thread rule: pure functions and plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <taskhost/sdk.hpp>

namespace timer_plugin {

inline constexpr int64_t kMaxMs = 365LL * 24 * 3600 * 1000;  // a year: keeps the step arithmetic in range
inline constexpr int kMaxSteps = 10000;

// What the task's input asks for: {"ms": N, "steps": K}; steps defaults to 1.
struct TimerInput {
  int64_t ms = 0;
  int steps = 1;
};

// InvalidArgument naming the member ("ms", "steps") or an unknown one.
taskhost::Status parse_timer_input(std::string_view input, TimerInput* out);

struct TimerPlan {
  int64_t started_ms = 0;   // when the first attempt started
  int64_t deadline_ms = 0;  // when the task ends, whichever attempt runs it
  int steps = 1;            // progress steps, evenly spaced; the last one is due at the deadline

  static TimerPlan starting_at(int64_t now_ms, const TimerInput& input);
  // When step `step` (1..steps) is due; step_due(steps) == deadline_ms.
  int64_t step_due(int step) const;
  // How many steps are due at `now_ms`: the largest i with step_due(i) <= now_ms (0..steps).
  int steps_done_at(int64_t now_ms) const;
};

// The checkpoint: {"v":1,"started_ms":S,"deadline_ms":D,"steps":K} (JSON text).
std::string encode_checkpoint(const TimerPlan& plan);
// InvalidArgument naming "checkpoint" when the bytes are not one this plugin wrote.
taskhost::Status decode_checkpoint(std::string_view bytes, TimerPlan* out);

// The wall clock, in ms since the Unix epoch, rounded down: "now" for deciding what is due.
int64_t wall_clock_ms();
// The same rounded up: the start of a new plan, so that a deadline start + ms is never less than ms away.
int64_t wall_clock_ms_ceil();

}  // namespace timer_plugin
