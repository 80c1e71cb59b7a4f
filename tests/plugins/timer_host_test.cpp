// timer.wait end to end: the built timer.so in a real Host, through the real router.
#include <dirent.h>

#include "host_fixture.hpp"
#include "plugin_test_support.hpp"

using namespace taskhost;
using namespace taskhost::testing;
using namespace plugin_tests;

namespace {

constexpr char kTimer[] = "timer.wait";

HostFixture timer_host(tasks::RouterOptions options = {}) {
  return HostFixture(BuiltPlugins{{"timer.so"}}, options);
}

const google::protobuf::Value& member(const google::protobuf::Value& v, const std::string& key) {
  const auto& fields = v.struct_value().fields();
  const auto it = fields.find(key);
  REQUIRE_MESSAGE(it != fields.end(), "no member '" << key << "'");
  return it->second;
}

std::vector<v1::Progress> progress_of(RecordingOutbox& outbox, const std::string& id) {
  std::vector<v1::Progress> out;
  for (const auto& e : outbox.events_of(id)) {
    if (e.has_progress()) out.push_back(e.progress());
  }
  return out;
}

std::string checkpoint_json(int64_t started_ms, int64_t deadline_ms, int steps) {
  return R"({"v":1,"started_ms":)" + std::to_string(started_ms) + R"(,"deadline_ms":)" +
         std::to_string(deadline_ms) + R"(,"steps":)" + std::to_string(steps) + "}";
}

size_t thread_count() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

}  // namespace

TEST_CASE("timer.wait succeeds after ms with one progress event per step, its deadline checkpointed") {
  HostFixture f = timer_host();
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(f.router().assign(assignment("t1", kTimer, R"({"ms":200,"steps":4})")).accepted());
  const auto c = f.outbox.wait_completion("t1");
  REQUIRE(c);
  CHECK(since(t0) >= 200ms);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(member(c->output(), "resumed").bool_value() == false);
  const double waited = member(c->output(), "waited_ms").number_value();
  CHECK(waited >= 200);
  CHECK(waited < 2000);

  const auto progress = progress_of(f.outbox, "t1");
  REQUIRE(progress.size() == 4);
  for (size_t i = 0; i < progress.size(); ++i) {
    CHECK(progress[i].current() == static_cast<double>(i + 1));
    CHECK(progress[i].total() == 4);
    CHECK(progress[i].unit() == "steps");
  }
  const google::protobuf::Value cp = json_value(f.outbox.checkpoint("t1"));
  CHECK(member(cp, "deadline_ms").number_value() - member(cp, "started_ms").number_value() == 200);
  CHECK(member(cp, "steps").number_value() == 4);
}

TEST_CASE("cancel ends a long timer promptly, as canceled") {
  HostFixture f = timer_host();
  REQUIRE(f.router().assign(assignment("long", kTimer, R"({"ms":60000,"steps":10})")).accepted());
  REQUIRE(f.outbox.wait_state("long", v1::RUNNING));
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(f.router().cancel(cancel_request("long")).outcome() == v1::DeliveryReceipt::ACCEPTED);
  const auto c = f.outbox.wait_completion("long", 5s);
  REQUIRE(c);
  CHECK(since(t0) < 1s);
  CHECK(c->state() == v1::CANCELED);
  CHECK(c->error().code() == v1::CANCELLED);
  CHECK(f.router().wait_idle(5s));
}

TEST_CASE("a re-attach from a checkpoint whose deadline passed finishes at once with resumed=true") {
  HostFixture f = timer_host();
  const int64_t now = wall_ms();
  tasks::Resume resume{true, checkpoint_json(now - 5000, now - 1000, 2)};
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(f.router().assign(assignment("old", kTimer, R"({"ms":60000,"steps":2})", 2), resume).accepted());
  const auto c = f.outbox.wait_completion("old", 5s);
  REQUIRE(c);
  CHECK(since(t0) < 1s);
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(c->attempt() == 2);
  CHECK(member(c->output(), "resumed").bool_value() == true);
  CHECK(member(c->output(), "waited_ms").number_value() >= 5000);  // counted from the first attempt's start
  const auto progress = progress_of(f.outbox, "old");
  REQUIRE_FALSE(progress.empty());
  CHECK(progress.back().current() == 2);
}

TEST_CASE("a re-attach before the deadline ends at the ORIGINAL deadline, not ms after the re-attach") {
  HostFixture f = timer_host();
  const int64_t now = wall_ms();
  tasks::Resume resume{true, checkpoint_json(now - 1000, now + 400, 1)};
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(f.router().assign(assignment("mid", kTimer, R"({"ms":60000})", 3), resume).accepted());
  const auto c = f.outbox.wait_completion("mid", 5s);
  REQUIRE(c);
  CHECK(since(t0) >= 300ms);
  CHECK(since(t0) < 3s);  // the input's 60 s would be far longer
  CHECK(c->state() == v1::SUCCEEDED);
  CHECK(member(c->output(), "resumed").bool_value() == true);
  CHECK(member(c->output(), "waited_ms").number_value() >= 1400);
}

TEST_CASE("bad input and a bad checkpoint are INVALID_INPUT naming the field") {
  HostFixture f = timer_host();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "'ms' is required"},
      {R"({"ms":-1})", "'ms' must be an integer"},
      {R"({"ms":1.5})", "'ms' must be an integer"},
      {R"({"ms":10,"steps":0})", "'steps' must be an integer"},
      {R"({"ms":10,"step":2})", "unknown input member 'step'"},
      {R"([1])", "input must be a JSON object"},
  };
  int n = 0;
  for (const auto& [input, expected] : cases) {
    CAPTURE(input);
    const std::string id = "bad" + std::to_string(n++);
    REQUIRE(f.router().assign(assignment(id, kTimer, input)).accepted());
    const auto c = f.outbox.wait_completion(id);
    REQUIRE(c);
    CHECK(c->error().code() == v1::INVALID_INPUT);
    CHECK_MESSAGE(contains(c->error().message(), expected), c->error().message());
  }
  tasks::Resume garbage{true, "step-3"};
  REQUIRE(f.router().assign(assignment("badcp", kTimer, R"({"ms":10})", 2), garbage).accepted());
  const auto c = f.outbox.wait_completion("badcp");
  REQUIRE(c);
  CHECK(c->error().code() == v1::INVALID_INPUT);
  CHECK(contains(c->error().message(), "checkpoint"));
}

TEST_CASE("1000 concurrent timers on one executor all finish, served by one scheduler thread") {
  tasks::RouterOptions o;
  o.max_active = 2000;
  HostFixture f = timer_host(o);
  // A first task creates the executor (and its thread) before the baseline is taken.
  REQUIRE(f.router().assign(assignment("warm", kTimer, R"({"ms":0})")).accepted());
  REQUIRE(f.outbox.wait_completion("warm"));
  const size_t baseline = thread_count();

  constexpr int kTimers = 1000;
  for (int i = 0; i < kTimers; ++i) {
    REQUIRE(f.router().assign(assignment("k" + std::to_string(i), kTimer, R"({"ms":1500,"steps":4})")).accepted());
  }
  const size_t during = thread_count();
  CHECK(f.router().active_count() > kTimers / 2);  // most still wait: the count was taken while they run
  CHECK(during < baseline + 10);                   // a thread per timer would add ~1000

  CHECK(eventually([&] { return f.outbox.completions().size() == kTimers + 1; }, 20s));
  size_t succeeded = 0;
  for (const auto& c : f.outbox.completions()) succeeded += c.state() == v1::SUCCEEDED;
  CHECK(succeeded == kTimers + 1);
  CHECK(f.router().wait_idle(5s));
}
