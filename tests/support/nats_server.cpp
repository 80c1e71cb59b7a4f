#include "nats_server.hpp"

#include <nats/nats.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace taskhost::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-" + std::string(6, 'X');  // mkdtemp
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// ---------------------------------------------------------------------------------------------------

Subprocess::Subprocess(std::vector<std::string> argv, const fs::path& log_file,
                       std::vector<std::string> extra_env) {
  if (argv.empty()) throw std::invalid_argument("Subprocess: empty argv");
  // Everything exec needs is built before fork: the child of a threaded parent must not allocate.
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<char*> env;
  for (auto& e : extra_env) env.push_back(e.data());  // first, so they win over inherited values
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  env.push_back(nullptr);
  const pid_t parent = ::getpid();
  // Signals stay blocked across fork so none reaches the child while it still runs the test's handlers.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_ = ::fork();
  if (pid_ != 0) pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    // Child: only async-signal-safe calls until exec. The death signal makes sure no server or host
    // process survives a crashed test.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::execve(args[0], args.data(), env.data());
    ::_exit(127);
  }
}

Subprocess::~Subprocess() { stop(); }

bool Subprocess::running() {
  if (pid_ <= 0 || status_ != -1) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

void Subprocess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

int Subprocess::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(10ms);
  }
  return status_;
}

int Subprocess::stop(std::chrono::milliseconds grace) {
  if (!running()) return status_;
  ::kill(pid_, SIGTERM);
  if (wait(grace) == -1) kill_now();
  return status_;
}

void Subprocess::kill_now() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  if (::waitpid(pid_, &st, 0) == pid_) status_ = st;
}

// ---------------------------------------------------------------------------------------------------

namespace {

bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

NatsServer::NatsServer(Options options) : options_(std::move(options)) {
  if (options_.work_dir.empty()) throw std::invalid_argument("NatsServer: work_dir is required");
  fs::create_directories(options_.work_dir / "store");
  // A port that was free when picked can be taken before the server binds it: try a few times.
  for (int attempt = 0;; ++attempt) {
    if (options_.client_port == 0 || attempt > 0) options_.client_port = free_tcp_port();
    try {
      start();
      return;
    } catch (const std::exception&) {
      if (attempt >= 3) throw;
    }
  }
}

NatsServer::~NatsServer() {
  if (process_) process_->stop(10s);
}

std::string NatsServer::url() const { return "nats://127.0.0.1:" + std::to_string(options_.client_port); }

fs::path NatsServer::log_file() const { return options_.work_dir / "server.log"; }

bool NatsServer::running() { return process_ && process_->running(); }

void NatsServer::start() {
  fs::path conf = options_.work_dir / "server.conf";
  {
    std::ofstream out(conf, std::ios::trunc);
    out << "server_name: " << quoted(options_.name) << "\n";
    out << "listen: " << quoted("127.0.0.1:" + std::to_string(options_.client_port)) << "\n";
    out << "jetstream {\n  store_dir: " << quoted((options_.work_dir / "store").string()) << "\n}\n";
    if (!options_.cluster_name.empty()) {
      out << "cluster {\n  name: " << quoted(options_.cluster_name) << "\n";
      out << "  listen: " << quoted("127.0.0.1:" + std::to_string(options_.cluster_port)) << "\n";
      out << "  routes: [";
      for (size_t i = 0; i < options_.route_ports.size(); ++i) {
        out << (i ? ", " : "") << quoted("nats-route://127.0.0.1:" + std::to_string(options_.route_ports[i]));
      }
      out << "]\n}\n";
    }
    out << options_.extra_config << "\n";
  }
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{"/usr/sbin/nats-server", "-c", conf.string()}, log_file());
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (!port_accepts(options_.client_port)) {
    if (!process_->running()) {
      throw std::runtime_error("nats-server " + options_.name + " exited at start; see " + log_file().string());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      process_->kill_now();
      throw std::runtime_error("nats-server " + options_.name + " did not listen within 15 s");
    }
    std::this_thread::sleep_for(10ms);
  }
}

void NatsServer::stop() {
  if (process_) process_->stop(15s);
}

void NatsServer::kill() {
  if (process_) process_->kill_now();
}

void NatsServer::pause() {
  if (process_) process_->signal(SIGSTOP);
}

void NatsServer::resume() {
  if (process_) process_->signal(SIGCONT);
}

void NatsServer::restart() {
  if (running()) stop();
  start();
}

// ---------------------------------------------------------------------------------------------------

NatsSingle::NatsSingle() {
  NatsServer::Options o;
  o.work_dir = dir_.path() / "n1";
  server_ = std::make_unique<NatsServer>(o);
  if (!NatsCluster::wait_jetstream(server_->url(), 15s)) {
    throw std::runtime_error("JetStream did not come up on " + server_->url());
  }
}

NatsCluster::NatsCluster(size_t nodes) {
  std::vector<int> cluster_ports;
  for (size_t i = 0; i < nodes; ++i) cluster_ports.push_back(free_tcp_port());
  for (size_t i = 0; i < nodes; ++i) {
    NatsServer::Options o;
    o.name = "n" + std::to_string(i + 1);
    o.work_dir = dir_.path() / o.name;
    o.cluster_name = "taskhost-test";
    o.cluster_port = cluster_ports[i];
    for (size_t j = 0; j < nodes; ++j) {
      if (j != i) o.route_ports.push_back(cluster_ports[j]);
    }
    nodes_.push_back(std::make_unique<NatsServer>(o));
  }
  for (auto& n : nodes_) {
    if (!wait_jetstream(n->url(), 30s)) throw std::runtime_error("JetStream cluster did not form at " + n->url());
  }
}

std::string NatsCluster::urls() const {
  std::string out;
  for (const auto& n : nodes_) out += (out.empty() ? "" : ",") + n->url();
  return out;
}

bool NatsCluster::wait_jetstream(const std::string& url, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    natsConnection* nc = nullptr;
    if (natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK) {
      jsCtx* js = nullptr;
      jsOptions jo;
      jsOptions_Init(&jo);
      jo.Wait = 1000;
      bool ok = false;
      if (natsConnection_JetStream(&js, nc, &jo) == NATS_OK) {
        // A stream create/delete proves a meta leader exists (account info alone answers earlier).
        jsStreamConfig cfg;
        jsStreamConfig_Init(&cfg);
        std::string name = "HARNESS_PROBE_" + std::to_string(::getpid());
        cfg.Name = name.c_str();
        cfg.Storage = js_MemoryStorage;
        jsStreamInfo* si = nullptr;
        jsErrCode code = static_cast<jsErrCode>(0);
        if (js_AddStream(&si, js, &cfg, &jo, &code) == NATS_OK) {
          jsStreamInfo_Destroy(si);
          js_DeleteStream(js, name.c_str(), &jo, &code);
          ok = true;
        }
        jsCtx_Destroy(js);
      }
      natsConnection_Destroy(nc);
      if (ok) return true;
    }
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

}  // namespace taskhost::testing
