// The fatal signal handler, in real crashing processes (forked from the test): what it writes to stderr
// and to the note file, that the process still dies of its own signal, and that notes read back exactly.
#include "common/crash_report.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

using namespace taskhost;

namespace {

struct Crash {
  int status = 0;
  std::string err;   // what the child wrote to stderr
  std::string note;  // what it wrote to the note fd
};

std::string drain(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10'000) <= 0) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Runs `body` in a child with the handler installed (note fd and stderr are pipes read here).
Crash crash_in_child(const std::function<void()>& body, bool with_note_fd = true) {
  int err[2], note[2];
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(note, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);  // no core files in the build tree
    ::dup2(err[1], STDERR_FILENO);
    crash_report::install(with_note_fd ? note[1] : -1);
    body();
    ::_exit(0);  // not reached when the body crashes
  }
  ::close(err[1]);
  ::close(note[1]);
  Crash c;
  c.err = drain(err[0]);
  c.note = drain(note[0]);
  ::close(err[0]);
  ::close(note[0]);
  REQUIRE(::waitpid(pid, &c.status, 0) == pid);
  return c;
}

}  // namespace

TEST_CASE("an abort inside a task's call names the task on stderr and in a note, and still dies of SIGABRT") {
  const std::string id = "task-1\n'x'";  // a newline and quotes: escaped for people, exact in the note
  const std::string kind = "test.hold";
  const Crash c = crash_in_child([&] {
    const crash_report::TaskScope scope(id, kind);
    std::abort();
  });
  REQUIRE(WIFSIGNALED(c.status));
  CHECK(WTERMSIG(c.status) == SIGABRT);
  CHECK(c.err.find("taskhost: fatal SIGABRT in a call of task 'task-1\\x0a\\x27x\\x27' (kind 'test.hold')") !=
        std::string::npos);
  size_t unreadable = 99;
  const auto notes = crash_report::parse_notes(c.note, &unreadable);
  CHECK(unreadable == 0);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].signal == SIGABRT);
  CHECK(notes[0].task_id == id);
  CHECK(notes[0].kind == kind);
}

TEST_CASE("a fault after a nested scope ended names the outer task; outside any scope no task is named") {
  const std::string outer = "outer", inner = "inner", kind = "k";
  const Crash nested = crash_in_child([&] {
    const crash_report::TaskScope a(outer, kind);
    { const crash_report::TaskScope b(inner, kind); }
    *reinterpret_cast<volatile int*>(uintptr_t{8}) = 1;  // a real fault, not a raised signal
  });
  REQUIRE(WIFSIGNALED(nested.status));
  CHECK(WTERMSIG(nested.status) == SIGSEGV);
  const auto notes = crash_report::parse_notes(nested.note);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].task_id == outer);
  CHECK(notes[0].signal == SIGSEGV);

  const Crash outside = crash_in_child([] { std::abort(); });
  REQUIRE(WIFSIGNALED(outside.status));
  CHECK(WTERMSIG(outside.status) == SIGABRT);
  CHECK(outside.err.find("taskhost: fatal SIGABRT outside any task's call") != std::string::npos);
  CHECK(outside.note.empty());

  const Crash no_file = crash_in_child(
      [&] {
        const crash_report::TaskScope a(outer, kind);
        std::abort();
      },
      /*with_note_fd=*/false);
  CHECK(WTERMSIG(no_file.status) == SIGABRT);
  CHECK(no_file.err.find("in a call of task 'outer'") != std::string::npos);
  CHECK(no_file.note.empty());
}

TEST_CASE("notes read back exactly; torn and foreign lines are skipped and counted") {
  const crash_report::Note a{SIGSEGV, std::string("a\0b", 3), "kind.one"};
  const crash_report::Note b{SIGBUS, "b", ""};
  const std::string good = crash_report::format_note(a) + crash_report::format_note(b);
  size_t unreadable = 0;
  auto notes = crash_report::parse_notes(good, &unreadable);
  REQUIRE(notes.size() == 2);
  CHECK(unreadable == 0);
  CHECK(notes[0].task_id == a.task_id);
  CHECK(notes[0].kind == a.kind);
  CHECK(notes[1].signal == SIGBUS);
  CHECK(notes[1].kind.empty());

  const std::string torn = crash_report::format_note(a).substr(0, 20);  // the writer died mid-line
  notes = crash_report::parse_notes(good + "garbage line\ncrash v1 6 zz 00\ncrash v1 6  00\n" + torn, &unreadable);
  CHECK(notes.size() == 2);
  CHECK(unreadable == 4);

  CHECK(crash_report::signal_name(SIGABRT) == "SIGABRT");
  CHECK(crash_report::signal_name(64) == "signal 64");
}
