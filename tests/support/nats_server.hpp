// Test harness for the NATS suites: real `nats-server -js` processes on loopback, a single node or a
// 3-node JetStream cluster, each on random free ports with its own temporary store directory, plus a
// small child-process handle the fault tests also use for host processes.
//
// Nothing outlives the test: every child is started with PR_SET_PDEATHSIG = SIGKILL (it dies with the
// test process even if the test crashes), and destructors stop the children and remove the directories.
//
// Thread rule: the objects are meant for the test's main thread; none of them is thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace taskhost::testing {

// A directory under $TMPDIR (or /tmp), removed with everything in it by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "taskhost-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice for port 0).
int free_tcp_port();

// One child process (fork + execv). stdout and stderr go to `log_file`.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, const std::filesystem::path& log_file,
             std::vector<std::string> extra_env = {});
  ~Subprocess();  // stop(): SIGTERM, then SIGKILL after 5 s
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();                            // reaps the child if it has exited
  void signal(int sig);                      // no-op once it exited
  // Waits for exit up to `timeout`; returns the wait status, or -1 if still running.
  int wait(std::chrono::milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL. Returns the wait status.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  void kill_now();                           // SIGKILL and reap
  int exit_status() const { return status_; }  // the wait status once exited, else -1

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

// One nats-server node. The constructor starts it and waits until it accepts client connections.
class NatsServer {
 public:
  struct Options {
    std::string name = "n1";
    std::filesystem::path work_dir;      // config, log and store live here; required
    int client_port = 0;                 // 0 = pick a free one
    std::string cluster_name;            // empty = standalone
    int cluster_port = 0;                // required with cluster_name
    std::vector<int> route_ports;        // the other nodes' cluster ports
    std::string extra_config;            // appended to server.conf as is (tls {...}, authorization {...})
  };
  explicit NatsServer(Options options);
  ~NatsServer();
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  std::string url() const;             // nats://127.0.0.1:PORT
  int client_port() const { return options_.client_port; }
  const std::string& name() const { return options_.name; }
  std::filesystem::path log_file() const;
  bool running();

  void stop();     // SIGTERM, wait for exit (clean shutdown, store flushed)
  void kill();     // SIGKILL (crash)
  void restart();  // start again on the same ports with the same store; waits until it accepts clients
  // SIGSTOP / SIGCONT: a server that stops answering without closing a connection (a long GC or I/O
  // stall, a VM pause). Clients' requests wait in their sockets and are answered after resume().
  void pause();
  void resume();

 private:
  void start();
  Options options_;
  std::unique_ptr<Subprocess> process_;
};

// A single JetStream node in its own temporary directory.
class NatsSingle {
 public:
  NatsSingle();
  NatsServer& server() { return *server_; }
  std::string url() const { return server_->url(); }

 private:
  TempDir dir_{"taskhost-nats"};
  std::unique_ptr<NatsServer> server_;
};

// Three JetStream nodes routed on loopback. The constructor waits until JetStream has a meta leader
// (an R3 stream can be created).
class NatsCluster {
 public:
  explicit NatsCluster(size_t nodes = 3);
  NatsServer& node(size_t i) { return *nodes_.at(i); }
  size_t size() const { return nodes_.size(); }
  // All client URLs, comma-separated (what a client's server list takes).
  std::string urls() const;
  // Waits until JetStream answers through `url` (meta leader elected); false on timeout.
  static bool wait_jetstream(const std::string& url, std::chrono::milliseconds timeout);

 private:
  TempDir dir_{"taskhost-nats-cluster"};
  std::vector<std::unique_ptr<NatsServer>> nodes_;
};

}  // namespace taskhost::testing
