// TASKHOST_FAILPOINTS parsing (common/failpoint.hpp). Firing is proven where it matters, in the NATS fault
// tests, whose real host processes lose control messages through it; an unarmed process never fires.
#include "common/failpoint.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace taskhost;

namespace {

struct Parsed {
  std::map<std::string, long, std::less<>> armed;
  std::vector<std::string> bad;
};

Parsed parse(std::string_view spec) {
  Parsed p;
  p.armed = parse_failpoints(spec, [&](std::string_view item) { p.bad.emplace_back(item); });
  return p;
}

}  // namespace

TEST_CASE("a failpoint without a count fires once; a count says how many times") {
  const auto p = parse("nats.control.lose_steer,nats.control.lose_cancel=3,off=0");
  CHECK(p.bad.empty());
  CHECK(p.armed == std::map<std::string, long, std::less<>>{
                       {"nats.control.lose_steer", 1}, {"nats.control.lose_cancel", 3}, {"off", 0}});
}

TEST_CASE("empty items are skipped, and an item with a bad count is named and left out") {
  const auto p = parse(",a=2,,b=x,c=-1,d=,e=4z,");
  CHECK(p.armed == std::map<std::string, long, std::less<>>{{"a", 2}});
  CHECK(p.bad == std::vector<std::string>{"b=x", "c=-1", "d=", "e=4z"});
}

TEST_CASE("a failpoint that TASKHOST_FAILPOINTS does not list never fires") {
  for (int i = 0; i < 3; ++i) CHECK_FALSE(failpoint("test.never_armed"));
}
