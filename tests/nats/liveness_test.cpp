// HostLiveness against a real nats-server, each host's ticks driven by the test: whether a host that
// stops beating is found dead, and whether one that only waited out a server stall is not.
#include "nats_server.hpp"
#include "rig.hpp"

#include "transport/nats/host_liveness.hpp"
#include "transport/nats/setup.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <initializer_list>
#include <optional>
#include <set>

using namespace taskhost;
using namespace taskhost::testing;
namespace tn = taskhost::transport::nats;

namespace {

// One host's liveness, as the transport wires it: its own connection, record store and bucket handle.
class Member {
 public:
  Member(const std::string& url, const std::string& worker,
         std::optional<std::chrono::seconds> host_dead_after = std::nullopt)
      : options_(with_dead_after(test_options(url, worker), host_dead_after)),  // default 2 s: a beat every 500 ms
        names_(options_.stream_prefix, options_.kv_bucket),
        connection_(options_, "liveness " + worker),
        store_(connection_, names_),
        kv_(tn::open_bucket(connection_.js(), names_, options_)),
        liveness_(std::make_unique<tn::HostLiveness>(store_, kv_, options_)) {
    liveness_->start();
  }
  ~Member() {
    liveness_.reset();
    kvStore_Destroy(kv_);
  }
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  tn::HostLiveness& liveness() { return *liveness_; }
  static tn::NatsOptions with_dead_after(tn::NatsOptions o, std::optional<std::chrono::seconds> after) {
    if (after) o.host_dead_after = *after;
    return o;
  }
  // Ticks until `other`'s key has reached this host.
  bool sees(const std::string& other) {
    return eventually([&] {
      liveness_->tick();
      return liveness_->alive(other);
    }, 5s, 20ms);
  }

 private:
  NatsOptions options_;
  tn::Names names_;
  tn::Connection connection_;
  tn::RecordStore store_;
  kvStore* kv_;
  std::unique_ptr<tn::HostLiveness> liveness_;
};

// Ticks each member every 100 ms, `rounds` times: none of them may find a host to rescue.
void tick_quietly(std::initializer_list<Member*> members, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    for (auto* m : members) CHECK(m->liveness().tick().empty());
    std::this_thread::sleep_for(100ms);
  }
}

}  // namespace

TEST_CASE("liveness: a host that stops beating is found dead once, by one survivor") {
  NatsSingle nats;
  Member a(nats.url(), "a");
  auto b = std::make_unique<Member>(nats.url(), "b");
  REQUIRE(a.sees("b"));
  CHECK_FALSE(a.liveness().alive("nobody"));
  b.reset();  // stops beating without removing its key, as a killed process does

  std::vector<std::string> rescued;
  CHECK(eventually([&] {
    rescued = a.liveness().tick();
    return !rescued.empty();
  }, 10s, 100ms));
  CHECK(rescued == std::vector<std::string>{"b"});
  CHECK_FALSE(a.liveness().alive("b"));
  for (int i = 0; i < 5; ++i) CHECK(a.liveness().tick().empty());  // rescued once
}

TEST_CASE("liveness: after a server stall longer than host_dead_after, nobody is declared dead") {
  // Every host's beat waits out the stall in its socket and then succeeds. The others' beats land after
  // this host's own, so judged by the clock alone they would have been silent for the whole stall: this
  // host would take over their running tasks and fail those that cannot re-attach "orphaned".
  NatsSingle nats;
  Member a(nats.url(), "a");
  Member b(nats.url(), "b");
  REQUIRE(a.sees("b"));
  REQUIRE(b.sees("a"));
  std::this_thread::sleep_for(600ms);  // a's next beat is due: its tick will block in it
  nats.server().pause();
  auto ticked = std::async(std::launch::async, [&] { return a.liveness().tick(); });
  std::this_thread::sleep_for(3s);  // > host_dead_after (2 s), < a request's wait (5 s)
  nats.server().resume();
  CHECK(ticked.get().empty());
  CHECK(a.liveness().alive("b"));
  // b beats again (its beat had been held up too); from then on both stay alive.
  tick_quietly({&b, &a}, 20);
  CHECK(a.liveness().alive("b"));
  CHECK(b.liveness().alive("a"));
}

TEST_CASE("liveness: a rescuer that dies holding the lease on a dead host: a survivor wins both") {
  // Only one host at a time rescues a dead host: the one whose lease on its key is in place. A rescuer
  // that dies mid-rescue stops renewing that lease, so the dead host's key falls silent again and the
  // records it still holds are rescued by the next winner, with the dead rescuer's own.
  NatsSingle nats;
  auto a = std::make_unique<Member>(nats.url(), "a");
  auto b = std::make_unique<Member>(nats.url(), "b");
  REQUIRE(a->sees("b"));
  b.reset();
  std::vector<std::string> won;
  REQUIRE(eventually([&] {
    won = a->liveness().tick();
    return !won.empty();
  }, 10s, 100ms));
  CHECK(won == std::vector<std::string>{"b"});
  // c comes while a is rescuing b: b's key holds a's lease, so b is dead to c (its tasks are being
  // taken over) but not c's to rescue while a renews the lease.
  Member c(nats.url(), "c");
  REQUIRE(c.sees("a"));
  CHECK_FALSE(c.liveness().alive("b"));
  tick_quietly({a.get(), &c}, 30);  // 3 s, longer than host_dead_after
  a.reset();  // dies mid-rescue: neither its key nor its lease on b is written again

  std::set<std::string> rescued;
  CHECK(eventually([&] {
    for (auto& w : c.liveness().tick()) rescued.insert(w);
    return rescued.size() == 2;
  }, 10s, 100ms));
  CHECK(rescued == std::set<std::string>{"a", "b"});
}

TEST_CASE("liveness: a released lease removes the dead host's key; nobody rescues it again") {
  NatsSingle nats;
  Member a(nats.url(), "a");
  auto b = std::make_unique<Member>(nats.url(), "b");
  REQUIRE(a.sees("b"));
  b.reset();
  REQUIRE(eventually([&] { return !a.liveness().tick().empty(); }, 10s, 100ms));
  a.liveness().release("b");
  CHECK(a.liveness().tick().empty());  // deletes the key
  // A host that comes later finds no key of b to judge, and a finds nothing more to rescue.
  Member late(nats.url(), "late");
  tick_quietly({&a, &late}, 30);
  CHECK_FALSE(late.liveness().alive("b"));
  CHECK(late.liveness().alive("a"));
}

TEST_CASE("liveness: a host that was only slow takes its key back from the rescuer's lease") {
  NatsSingle nats;
  Member a(nats.url(), "a");
  Member b(nats.url(), "b");
  REQUIRE(a.sees("b"));
  // b does not tick for longer than host_dead_after: a wins it and holds the lease.
  REQUIRE(eventually([&] { return !a.liveness().tick().empty(); }, 10s, 100ms));
  CHECK_FALSE(a.liveness().alive("b"));
  // b beats again: its beat writes over the lease, and a lets the lease go and sees b alive.
  CHECK(eventually([&] {
    CHECK(b.liveness().tick().empty());
    CHECK(a.liveness().tick().empty());
    return a.liveness().alive("b");
  }, 5s, 100ms));
  tick_quietly({&b, &a}, 30);  // and from then on nobody is dead
  CHECK(a.liveness().alive("b"));
  CHECK(b.liveness().alive("a"));
}

TEST_CASE("liveness: a second host under a live host's worker id is refused; after that host died it may start") {
  NatsSingle nats;
  auto a = std::make_unique<Member>(nats.url(), "same");
  std::atomic<bool> stop{false};
  auto beating = std::async(std::launch::async, [&] {
    while (!stop.load()) {
      a->liveness().tick();
      std::this_thread::sleep_for(100ms);
    }
  });
  std::string error;
  try {
    // The twin looks for a beat newer than the one it found for 1.5 of its beat intervals: with 4 s
    // (1.5 s) that spans two or more of a's beats (500 ms apart, a tick every 100 ms), so a stalled
    // thread under TSan does not make a live host look dead.
    Member twin(nats.url(), "same", 4s);
  } catch (const tn::NatsError& e) {
    error = e.what();
  }
  CHECK(error.find("worker id 'same' is in use by another live host") != std::string::npos);
  stop = true;
  beating.get();

  a.reset();  // dies without removing its key: a restart under the same id resumes its tasks
  std::string restart_error;
  try {
    Member restarted(nats.url(), "same");
  } catch (const std::exception& e) {
    restart_error = e.what();
  }
  CHECK(restart_error.empty());
}
