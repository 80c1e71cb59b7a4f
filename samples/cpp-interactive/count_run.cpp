#include "count_run.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

#include "flat_json.hpp"
#include "plugin_info.hpp"

namespace interactive {

using taskhost::RunState;
using taskhost::Status;

namespace {
constexpr char kConfirmSchema[] = R"({"type":"string","enum":["yes","no"]})";
}

CountRun::CountRun(taskhost::TaskSink sink, CountSettings settings, CountProgress resume)
    : sink_(sink),
      settings_(settings),
      resume_from_(resume.step),
      answer_(std::move(resume.answer)),
      delay_ms_(settings.delay_ms) {}

CountRun::~CountRun() {
  cancel();
  join();
}

void CountRun::launch() {
  worker_ = std::thread([this] { run(); });
}

void CountRun::cancel() {
  std::lock_guard lock(mu_);
  cancel_ = true;
  wake_.notify_all();
}

void CountRun::detach() {
  {
    std::lock_guard lock(mu_);
    detach_ = true;
    wake_.notify_all();
  }
  join();
}

void CountRun::join() {
  if (worker_.joinable()) worker_.join();
}

Status CountRun::deliver(const taskhost::Message& message) {
  const std::string& body = message.text.empty() ? message.data : message.text;
  std::lock_guard lock(mu_);
  if (message.is_reply()) {
    if (message.in_reply_to != "confirm")
      return Status::InvalidArgument("no open request '" + message.in_reply_to + "'");
    answer_ = body;
  } else {
    inbox_.push_back(body);
  }
  wake_.notify_all();
  return Status::Ok();
}

CountRun::Wake CountRun::pause(std::optional<std::chrono::steady_clock::time_point> deadline) {
  for (;;) {
    std::deque<std::string> steering;
    {
      std::unique_lock lock(mu_);
      auto woken = [&] { return cancel_ || detach_ || !inbox_.empty() || (!deadline && answer_); };
      if (deadline) {
        wake_.wait_until(lock, *deadline, woken);
      } else {
        wake_.wait(lock, woken);
      }
      if (cancel_ || detach_) return Wake::stop;
      steering.swap(inbox_);
      if (steering.empty()) return deadline ? Wake::timeout : Wake::answer;
    }
    for (const std::string& text : steering) handle_steering(text);  // sink calls outside the lock
  }
}

void CountRun::handle_steering(const std::string& text) {
  if (text == "faster") {
    int now = 0;
    {
      std::lock_guard lock(mu_);
      delay_ms_ = std::max(1, delay_ms_ / 2);
      now = delay_ms_;
    }
    sink_.post("faster: step delay is now " + std::to_string(now) + " ms");
  } else {
    sink_.post("echo: " + text);
  }
}

void CountRun::run() {
  int step = resume_from_;
  sink_.state(RunState::running, resume_from_ > 0 ? "resumed after step " + std::to_string(step) : "counting");
  // Asked once per task, not per attempt: an answer given to an earlier attempt is in the checkpoint.
  bool must_ask = false;
  {
    std::lock_guard lock(mu_);
    must_ask = settings_.ask && !answer_ && resume_from_ < settings_.ask_at;
  }
  int recorded = resume_from_;  // the step the latest checkpoint names
  bool stopped = false;  // told to stop before the count was done
  while (!stopped && step < settings_.steps) {
    int delay = 0;
    {
      std::lock_guard lock(mu_);
      delay = delay_ms_;
    }
    if (pause(std::chrono::steady_clock::now() + std::chrono::milliseconds(delay)) == Wake::stop) {
      stopped = true;
      break;
    }
    ++step;
    sink_.progress(step, settings_.steps, "steps", "counting");
    if (must_ask && step == settings_.ask_at) {
      // The step is recorded only once answered: an attempt that resumes before that asks again.
      must_ask = false;
      sink_.request_input("confirm", "Counted to " + std::to_string(step) + ". Continue?", kConfirmSchema);
      stopped = pause(std::nullopt) == Wake::stop;
      if (stopped) break;
    }
    sink_.checkpoint(checkpoint_text(step));
    recorded = step;
  }
  if (!stopped) {
    sink_.succeed(output(step));  // finished first: a cancel that came too late does not undo the work
    return;
  }
  bool detached = false;
  {
    std::lock_guard lock(mu_);
    detached = detach_;
  }
  if (detached) {
    sink_.checkpoint(checkpoint_text(recorded));  // the last word of this attempt: a newer one resumes here
  } else {
    sink_.canceled("canceled after step " + std::to_string(step));
  }
}

std::string CountRun::checkpoint_text(int step) const {
  std::lock_guard lock(mu_);
  return answer_ ? std::to_string(step) + ":" + *answer_ : std::to_string(step);
}

std::string CountRun::output(int counted) const {
  std::string answer = "null";
  {
    std::lock_guard lock(mu_);
    if (answer_) answer = json_quote(*answer_);
  }
  return std::string("{\"plugin\":") + json_quote(kPluginName) + ",\"version\":" + json_quote(kPluginVersion) +
         ",\"counted\":" + std::to_string(counted) + ",\"resumed_from\":" + std::to_string(resume_from_) +
         ",\"answer\":" + answer + "}";
}

}  // namespace interactive
