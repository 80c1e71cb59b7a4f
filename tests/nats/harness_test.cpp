// The test harness itself: real nats-server processes on loopback, single node and a 3-node JetStream
// cluster, started, restarted and stopped without leaving a process or a directory behind.
#include "nats_server.hpp"

#include <nats/nats.h>

#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

using namespace taskhost::testing;

namespace {

bool process_exists(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

// Publishes one message to a file-backed stream of `replicas` and returns its stream message count.
uint64_t publish_and_count(const std::string& url, int replicas, const char* stream) {
  natsConnection* nc = nullptr;
  REQUIRE(natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK);
  jsCtx* js = nullptr;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 10'000;
  REQUIRE(natsConnection_JetStream(&js, nc, &jo) == NATS_OK);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream;
  std::string subject = std::string(stream) + ".x";
  const char* subjects[] = {subject.c_str()};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Replicas = replicas;
  jsErrCode code = static_cast<jsErrCode>(0);
  jsStreamInfo* si = nullptr;
  // A cluster that has just formed (or just lost a node) can answer "JetStream temporarily unavailable"
  // while it elects its leaders; adding a stream that exists with this config again is a no-op.
  natsStatus s = NATS_ERR;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((s = js_AddStream(&si, js, &cfg, nullptr, &code)) != NATS_OK && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  REQUIRE_MESSAGE(s == NATS_OK, "adding stream ", stream, ": ", natsStatus_GetText(s), " (JetStream error ", code, ")");
  jsStreamInfo_Destroy(si);
  // The stream itself may still be electing its leader (the node that led it just stopped): nobody
  // answers the publish meanwhile. The message id makes a retry after a lost answer store it once.
  jsPubOptions po;
  jsPubOptions_Init(&po);
  static int published = 0;
  const std::string msg_id = "harness-" + std::to_string(++published);
  po.MsgId = msg_id.c_str();
  jsPubAck* pa = nullptr;
  while ((s = js_Publish(&pa, js, subject.c_str(), "m", 1, &po, &code)) != NATS_OK &&
         std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  REQUIRE_MESSAGE(s == NATS_OK, "publishing to ", stream, ": ", natsStatus_GetText(s), " (JetStream error ", code, ")");
  jsPubAck_Destroy(pa);
  while ((s = js_GetStreamInfo(&si, js, stream, nullptr, &code)) != NATS_OK && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  REQUIRE_MESSAGE(s == NATS_OK, "stream info of ", stream, ": ", natsStatus_GetText(s), " (JetStream error ", code, ")");
  const uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return n;
}

}  // namespace

TEST_CASE("a single node starts on a free port, keeps its store across a restart, and is gone afterwards") {
  std::filesystem::path log;
  {
    NatsSingle single;
    log = single.server().log_file();
    CHECK(std::filesystem::exists(log));
    CHECK(single.server().client_port() > 0);
    CHECK(publish_and_count(single.url(), 1, "HARNESS") == 1);

    single.server().kill();  // a crash, not a clean stop
    CHECK_FALSE(single.server().running());
    single.server().restart();
    REQUIRE(NatsCluster::wait_jetstream(single.url(), std::chrono::seconds(15)));
    CHECK(publish_and_count(single.url(), 1, "HARNESS") == 2);  // the first message survived
  }
  CHECK_FALSE(std::filesystem::exists(log.parent_path()));  // the temporary directory is removed
}

TEST_CASE("a 3-node cluster forms, serves an R3 stream with a node down, and the node rejoins") {
  NatsCluster cluster(3);
  REQUIRE(cluster.size() == 3);
  CHECK(publish_and_count(cluster.node(0).url(), 3, "HARNESS_R3") == 1);

  cluster.node(2).stop();
  CHECK_FALSE(cluster.node(2).running());
  // Two of three still form a quorum: the R3 stream keeps taking messages through another node.
  CHECK(publish_and_count(cluster.node(1).url(), 3, "HARNESS_R3") == 2);

  cluster.node(2).restart();
  REQUIRE(NatsCluster::wait_jetstream(cluster.node(2).url(), std::chrono::seconds(30)));
  CHECK(publish_and_count(cluster.node(2).url(), 3, "HARNESS_R3") == 3);
  CHECK(cluster.urls().find(',') != std::string::npos);
}

TEST_CASE("a subprocess is reaped, and SIGKILL ends one that ignores SIGTERM") {
  TempDir dir;
  Subprocess quick({"/bin/sh", "-c", "exit 3"}, dir.path() / "quick.log");
  REQUIRE(quick.wait(std::chrono::seconds(5)) != -1);
  CHECK(WIFEXITED(quick.exit_status()));
  CHECK(WEXITSTATUS(quick.exit_status()) == 3);

  const auto log = dir.path() / "stubborn.log";
  Subprocess stubborn({"/bin/sh", "-c", "trap '' TERM; echo ready; sleep 30"}, log);
  const pid_t pid = stubborn.pid();
  auto ready = [&] {
    std::error_code ec;
    return std::filesystem::file_size(log, ec) > 0 && !ec;
  };
  for (int i = 0; i < 500 && !ready(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(ready());
  CHECK(process_exists(pid));
  const int st = stubborn.stop(std::chrono::milliseconds(300));
  CHECK(WIFSIGNALED(st));
  CHECK(WTERMSIG(st) == SIGKILL);
  CHECK_FALSE(process_exists(pid));
}
