#include "cli_harness.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace taskhost::clitest {
namespace {

using clock = std::chrono::steady_clock;

// argv/envp for execve: the current environment minus TASKHOST_API (tests say where the host is), plus `env`.
struct Exec {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;
  // `a` are taskhost's arguments, or with `program`, a whole command line (a[0] the program's path).
  Exec(const std::vector<std::string>& a, const std::vector<std::string>& extra, bool program = false) {
    if (!program) args.push_back(taskhost_bin().string());
    args.insert(args.end(), a.begin(), a.end());
    for (char** e = environ; *e; ++e) {
      if (std::strncmp(*e, "TASKHOST_API=", 13) != 0) env.emplace_back(*e);
    }
    env.insert(env.end(), extra.begin(), extra.end());
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

// In the child: die with the test, then exec. Never returns.
[[noreturn]] void exec_child(Exec& x) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::execve(x.argv[0], x.argv.data(), x.envp.data());
  std::fprintf(stderr, "execve %s: %s\n", x.argv[0], std::strerror(errno));
  ::_exit(127);
}

pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, int* out_fd, int* err_fd,
            bool program = false) {
  Exec x(args, env, program);
  int out[2], err[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    exec_child(x);
  }
  ::close(out[1]);
  ::close(err[1]);
  *out_fd = out[0];
  *err_fd = err[0];
  return pid;
}

// Reads both pipes until they close and the child exits, or the deadline passes (then kills it).
Result collect(pid_t pid, int out_fd, int err_fd, std::chrono::milliseconds timeout) {
  Result r;
  const auto deadline = clock::now() + timeout;
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open = 2;
  char buf[4096];
  while (open > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    const int n = ::poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      if (got > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(got));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/taskhost-cli-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path taskhost_bin() { return fs::path(TASKHOST_BIN_DIR) / "taskhost"; }
fs::path built_plugin(const std::string& file) { return fs::path(TASKHOST_PLUGIN_DIR) / file; }
fs::path fixture_plugin(const std::string& file) { return fs::path(TASKHOST_FIXTURE_DIR) / file; }

fs::path make_plugins_dir(const fs::path& parent, const std::vector<fs::path>& files) {
  const fs::path dir = parent / "plugins";
  fs::create_directories(dir);
  for (const auto& f : files) {
    REQUIRE_MESSAGE(fs::exists(f), "missing plugin " << f << " (build the plugin targets)");
    fs::copy_file(f, dir / f.filename(), fs::copy_options::overwrite_existing);
  }
  return dir;
}

std::ostream& operator<<(std::ostream& os, const Result& r) {
  return os << "exit " << r.code << (r.timed_out ? " (timed out)" : "") << "\n--- stdout\n" << r.out
            << "--- stderr\n" << r.err;
}

Result run(const std::vector<std::string>& args, const std::vector<std::string>& env, std::chrono::milliseconds timeout) {
  int out = -1, err = -1;
  const pid_t pid = spawn(args, env, &out, &err);
  return collect(pid, out, err, timeout);
}

Result run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  int out = -1, err = -1;
  const pid_t pid = spawn(argv, {}, &out, &err, /*program=*/true);
  return collect(pid, out, err, timeout);
}

Result run_in_terminal(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  Exec x(args, {"TERM=xterm"});
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  REQUIRE(pid >= 0);
  if (pid == 0) exec_child(x);
  Result r;
  const auto deadline = clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fd{master, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left)) < 0 && errno != EINTR) break;
    if (!(fd.revents & (POLLIN | POLLHUP | POLLERR))) continue;
    const ssize_t got = ::read(master, buf, sizeof(buf));
    if (got <= 0) break;  // EIO once the child closed the terminal
    r.out.append(buf, static_cast<size_t>(got));
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Background::Background(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  pid_ = spawn(args, env, &out_fd_, &err_fd_);
}

Background::~Background() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    collect(pid_, out_fd_, err_fd_, 5s);
  }
}

Result Background::finish(std::chrono::milliseconds timeout) {
  const pid_t pid = std::exchange(pid_, -1);
  return collect(pid, out_fd_, err_fd_, timeout);
}

Host::Host(fs::path plugins_dir, fs::path state_dir, std::vector<std::string> extra, std::string api,
           std::vector<std::string> env)
    : plugins_dir_(std::move(plugins_dir)), state_dir_(std::move(state_dir)) {
  log_ = state_dir_.parent_path() / (state_dir_.filename().string() + ".log");
  fs::create_directories(state_dir_);
  const fs::path addr_file = state_dir_ / "api.addr";
  std::error_code ec;
  fs::remove(addr_file, ec);  // a stale address from a killed host must not be mistaken for ours
  std::vector<std::string> args = {"serve", "--plugins", plugins_dir_.string(), "--state", state_dir_.string(),
                                   "--api", api};
  args.insert(args.end(), extra.begin(), extra.end());
  Exec x(args, env);
  pid_ = ::fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    exec_child(x);
  }
  const auto deadline = clock::now() + 10s;
  while (clock::now() < deadline) {
    std::ifstream in(addr_file);
    std::string addr;
    if (in && std::getline(in, addr) && !addr.empty()) {
      api_ = addr;
      return;
    }
    if (wait_exit(0ms)) FAIL("taskhost serve exited during startup:\n" << log());
    std::this_thread::sleep_for(20ms);
  }
  ::kill(pid_, SIGKILL);  // the destructor does not run for a constructor that fails
  wait_exit(5s);
  FAIL("taskhost serve did not write " << addr_file << " within 10 s:\n" << log());
}

Host::~Host() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

Result Host::cli(std::vector<std::string> args, std::chrono::milliseconds timeout) const {
  args.push_back("--api");
  args.push_back(api_);
  return run(args, {}, timeout);
}

void Host::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> Host::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

std::string Host::log() const {
  std::ifstream in(log_);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

boost::json::value parse_json(const std::string& text) {
  boost::json::error_code ec;
  auto v = boost::json::parse(text, ec);
  REQUIRE_MESSAGE(!ec, "not JSON: " << text);
  return v;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (!l.empty()) out.push_back(l);
  }
  return out;
}

boost::json::object wait_for_status(const Host& host, const std::string& id,
                                    const std::function<bool(const boost::json::object&)>& pred,
                                    std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  boost::json::object last;
  while (clock::now() < deadline) {
    const Result r = host.cli({"status", id, "--json"});
    if (r.code == 0) {
      last = parse_json(r.out).as_object();
      if (pred(last)) return last;
    }
    std::this_thread::sleep_for(25ms);
  }
  return last;
}

std::string str(const boost::json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  if (!v) return {};
  if (v->is_string()) return std::string(v->as_string());
  return boost::json::serialize(*v);
}

const boost::json::object* find_plugin(const boost::json::object& root, const std::string& file_name) {
  for (const auto& p : root.at("plugins").as_array()) {
    if (fs::path(str(p.as_object(), "file")).filename() == file_name) return &p.as_object();
  }
  return nullptr;
}

boost::json::object plugin_entry(const Host& host, const std::string& file_name) {
  const Result r = host.cli({"plugins", "--json"});
  INFO(r);
  REQUIRE(r.code == 0);
  const boost::json::value root = parse_json(r.out);
  const boost::json::object* p = find_plugin(root.as_object(), file_name);
  REQUIRE_MESSAGE(p, file_name);
  return *p;
}

const boost::json::object& obj(const boost::json::object& o, const char* key) {
  static const boost::json::object empty;
  const auto* v = o.if_contains(key);
  return v && v->is_object() ? v->as_object() : empty;
}

std::string submit(const Host& host, const std::vector<std::string>& args) {
  std::vector<std::string> a = {"submit"};
  a.insert(a.end(), args.begin(), args.end());
  a.push_back("--json");
  const Result r = host.cli(a);
  INFO(r);
  REQUIRE(r.code == 0);
  return str(parse_json(r.out).as_object(), "task_id");
}

}  // namespace taskhost::clitest
