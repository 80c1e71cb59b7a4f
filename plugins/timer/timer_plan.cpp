#include "timer_plan.hpp"

#include <chrono>
#include <optional>

#include "../common/json_fields.hpp"

namespace timer_plugin {

using taskhost::Status;
using taskhost::plugins::only_members;
using taskhost::plugins::parse_object;
using taskhost::plugins::read_int;

namespace {
constexpr int64_t kCheckpointVersion = 1;
}

Status parse_timer_input(std::string_view input, TimerInput* out) {
  boost::json::object in;
  if (Status s = parse_object(input, "input", &in); !s.ok()) return s;
  if (Status s = only_members(in, "input", {"ms", "steps"}); !s.ok()) return s;
  std::optional<int64_t> ms, steps;
  if (Status s = read_int(in, "ms", 0, kMaxMs, &ms); !s.ok()) return s;
  if (!ms) return Status::InvalidArgument("'ms' is required: how long to wait, in milliseconds");
  if (Status s = read_int(in, "steps", 1, kMaxSteps, &steps); !s.ok()) return s;
  out->ms = *ms;
  out->steps = static_cast<int>(steps.value_or(1));
  return Status::Ok();
}

TimerPlan TimerPlan::starting_at(int64_t now_ms, const TimerInput& input) {
  return TimerPlan{now_ms, now_ms + input.ms, input.steps};
}

int64_t TimerPlan::step_due(int step) const {
  return started_ms + (deadline_ms - started_ms) * step / steps;
}

int TimerPlan::steps_done_at(int64_t now_ms) const {
  if (now_ms >= deadline_ms) return steps;
  if (now_ms < started_ms) return 0;
  // An estimate, then corrected: step_due rounds down, so the plain quotient can be off by one.
  int i = static_cast<int>((now_ms - started_ms) * steps / (deadline_ms - started_ms));
  while (i < steps && step_due(i + 1) <= now_ms) ++i;
  while (i > 0 && step_due(i) > now_ms) --i;
  return i;
}

std::string encode_checkpoint(const TimerPlan& plan) {
  return "{\"v\":" + std::to_string(kCheckpointVersion) + ",\"started_ms\":" + std::to_string(plan.started_ms) +
         ",\"deadline_ms\":" + std::to_string(plan.deadline_ms) + ",\"steps\":" + std::to_string(plan.steps) + "}";
}

Status decode_checkpoint(std::string_view bytes, TimerPlan* out) {
  boost::json::object cp;
  if (Status s = parse_object(bytes, "checkpoint", &cp); !s.ok()) return s;
  std::optional<int64_t> version, started, deadline, steps;
  const auto bad = [&](const Status& why) {
    return Status::InvalidArgument("checkpoint '" + std::string(bytes) + "' is not a timer.wait checkpoint: " +
                                   why.message);
  };
  if (Status s = read_int(cp, "v", kCheckpointVersion, kCheckpointVersion, &version); !s.ok()) return bad(s);
  if (Status s = read_int(cp, "started_ms", 0, INT64_MAX / 2, &started); !s.ok()) return bad(s);
  if (Status s = read_int(cp, "deadline_ms", 0, INT64_MAX / 2, &deadline); !s.ok()) return bad(s);
  if (Status s = read_int(cp, "steps", 1, kMaxSteps, &steps); !s.ok()) return bad(s);
  if (!version || !started || !deadline || !steps)
    return bad(Status::InvalidArgument("'v', 'started_ms', 'deadline_ms' and 'steps' are required"));
  if (*deadline < *started || *deadline - *started > kMaxMs)
    return bad(Status::InvalidArgument("'deadline_ms' must lie 0 to " + std::to_string(kMaxMs) +
                                       " ms after 'started_ms'"));
  *out = TimerPlan{*started, *deadline, static_cast<int>(*steps)};
  return Status::Ok();
}

int64_t wall_clock_ms() {
  using namespace std::chrono;
  return floor<milliseconds>(system_clock::now().time_since_epoch()).count();
}

int64_t wall_clock_ms_ceil() {
  using namespace std::chrono;
  return ceil<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace timer_plugin
