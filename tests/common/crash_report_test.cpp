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
#include <memory>
#include <string>
#include <thread>

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
  CHECK(outside.err.find("taskhost: fatal SIGABRT outside any task's call or plugin load") != std::string::npos);
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

TEST_CASE("a crash while loading a plugin names the file and its content hash; a task's call inside wins") {
  const std::string file = "plugins/bad.so", hash(64, 'a'), id = "t", kind = "k";
  const Crash loading = crash_in_child([&] {
    const crash_report::LoadScope scope(file, hash);
    std::abort();
  });
  REQUIRE(WIFSIGNALED(loading.status));
  CHECK(WTERMSIG(loading.status) == SIGABRT);
  CHECK(loading.err.find("taskhost: fatal SIGABRT while loading plugin file 'plugins/bad.so'; the host ends with it "
                         "(noted: the next start does not load this content in-process again)") != std::string::npos);
  auto notes = crash_report::parse_notes(loading.note);
  REQUIRE(notes.size() == 2);  // the load's begin mark, then the crash
  CHECK(notes[0].what == crash_report::Note::What::load_begin);
  CHECK(notes[1].is_load());
  CHECK(notes[1].signal == SIGABRT);
  CHECK(notes[1].file == file);
  CHECK(notes[1].content_hash == hash);
  CHECK(notes[1].task_id.empty());

  // Both scopes on one thread: the task's call is the narrower one, and it is what is named.
  const Crash both = crash_in_child([&] {
    const crash_report::LoadScope load(file, hash);
    const crash_report::TaskScope task(id, kind);
    std::abort();
  });
  notes = crash_report::parse_notes(both.note);
  REQUIRE(notes.size() == 2);
  CHECK_FALSE(notes[1].is_load());
  CHECK(notes[1].task_id == id);
}

// Deep enough to overflow any thread stack (the limit is never reached); noinline and the volatile frame
// keep it a real recursion.
volatile int recursion_limit = 1 << 30;
[[gnu::noinline]] int recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth >= recursion_limit) return frame[0];
  return recurse(depth + 1) + frame[0];
}

TEST_CASE("a stack overflow in a task's call is noted: the handler runs on the thread's own alternate stack") {
  const std::string id = "deep", kind = "k";
  const Crash c = crash_in_child([&] {
    const crash_report::AltStack alt;
    const crash_report::TaskScope scope(id, kind);
    std::_Exit(recurse(0));
  });
  REQUIRE(WIFSIGNALED(c.status));
  CHECK(WTERMSIG(c.status) == SIGSEGV);
  const auto notes = crash_report::parse_notes(c.note);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].task_id == id);
}

TEST_CASE("a signal sent by another process blames no task; a crash in a process the plugin forked notes nothing") {
  const std::string id = "bystander", kind = "k";
  // Inside a task's scope the host waits; another process (a watchdog, say) sends it SIGABRT.
  const Crash sent = crash_in_child([&] {
    const crash_report::TaskScope scope(id, kind);
    const pid_t host = ::getpid();
    if (::fork() == 0) {
      ::usleep(50'000);
      ::kill(host, SIGABRT);
      ::_exit(0);
    }
    for (;;) ::pause();
  });
  REQUIRE(WIFSIGNALED(sent.status));
  CHECK(WTERMSIG(sent.status) == SIGABRT);
  CHECK(sent.note.empty());
  CHECK(sent.err.find("taskhost: fatal SIGABRT sent by process ") != std::string::npos);

  // The host forks (as a plugin might, without exec); the copy aborts inside the task's scope.
  const Crash forked = crash_in_child([&] {
    const crash_report::TaskScope scope(id, kind);
    const pid_t copy = ::fork();
    if (copy == 0) std::abort();
    int st = 0;
    ::waitpid(copy, &st, 0);
    ::_exit(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT ? 0 : 1);
  });
  CHECK(WIFEXITED(forked.status));
  CHECK(WEXITSTATUS(forked.status) == 0);
  CHECK(forked.note.empty());
  CHECK(forked.err.empty());

  // The copy calls exit() inside the task's scope: its status is its own, not the host's 70 for a
  // plugin's exit() (fork() copies the thread's scope).
  const Crash forked_exit = crash_in_child([&] {
    const crash_report::TaskScope scope(id, kind);
    const pid_t copy = ::fork();
    if (copy == 0) std::exit(5);
    int st = 0;
    ::waitpid(copy, &st, 0);
    ::_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
  });
  CHECK(WIFEXITED(forked_exit.status));
  CHECK(WEXITSTATUS(forked_exit.status) == 5);
  CHECK(forked_exit.note.empty());
  CHECK(forked_exit.err.empty());
}

TEST_CASE("exit() in a task's call is noted as signal 0 and ends the process with status 70; a load writes its marks") {
  const std::string id = "leaver", kind = "k", file = "plugins/p.so", hash(64, 'b');
  const Crash exited = crash_in_child([&] {
    { const crash_report::LoadScope load(file, hash); }
    const crash_report::TaskScope scope(id, kind);
    std::exit(3);
  });
  REQUIRE(WIFEXITED(exited.status));
  CHECK(WEXITSTATUS(exited.status) == crash_report::kPluginExitStatus);  // not the plugin's 3
  CHECK(exited.err.find("taskhost: exit() in a call of task 'leaver' (kind 'k'), most likely in its plugin's code; "
                        "the host ends with it, with status 70") != std::string::npos);
  const auto notes = crash_report::parse_notes(exited.note);
  REQUIRE(notes.size() == 3);
  CHECK(notes[0].what == crash_report::Note::What::load_begin);
  CHECK(notes[0].file == file);
  CHECK(notes[1].what == crash_report::Note::What::load_end);
  CHECK(notes[1].content_hash == hash);
  CHECK(notes[2].what == crash_report::Note::What::task);
  CHECK(notes[2].signal == 0);
  CHECK(notes[2].task_id == id);
  CHECK(crash_report::signal_name(0) == "exit()");
}

TEST_CASE("a handler a plugin put in place of the host's is taken back") {
  const Crash c = crash_in_child([] {
    std::signal(SIGSEGV, SIG_DFL);  // what a plugin's initializer, or a runtime it embeds, might do
    const auto taken = crash_report::reclaim();
    const bool ok = taken.size() == 1 && taken[0] == SIGSEGV && crash_report::reclaim().empty();
    if (!ok) ::_exit(1);
    const std::string id = "after-reclaim", kind = "k";
    const crash_report::TaskScope scope(id, kind);
    *reinterpret_cast<volatile int*>(uintptr_t{8}) = 1;
  });
  REQUIRE(WIFSIGNALED(c.status));
  CHECK(WTERMSIG(c.status) == SIGSEGV);
  const auto notes = crash_report::parse_notes(c.note);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].task_id == "after-reclaim");
}

TEST_CASE("notes read back exactly; torn and foreign lines are skipped and counted") {
  using What = crash_report::Note::What;
  crash_report::Note a{What::task, SIGSEGV, std::string("a\0b", 3), "kind.one", "", ""};
  crash_report::Note b{What::task, SIGBUS, "b", "", "", ""};
  crash_report::Note c;
  c.what = What::load;
  c.signal = SIGILL;
  c.file = "p/x y.so";
  c.content_hash = std::string(64, 'f');
  crash_report::Note d = c;
  d.what = What::code;
  const std::string good = crash_report::format_note(a) + crash_report::format_note(b) + crash_report::format_note(c) +
                           crash_report::format_note(d);
  size_t unreadable = 0;
  auto notes = crash_report::parse_notes(good, &unreadable);
  REQUIRE(notes.size() == 4);
  CHECK(notes[3].what == What::code);
  CHECK(notes[3].file == d.file);
  CHECK(notes[3].content_hash == d.content_hash);
  notes.pop_back();
  CHECK(unreadable == 0);
  CHECK(notes[0].task_id == a.task_id);
  CHECK(notes[0].kind == a.kind);
  CHECK(notes[1].signal == SIGBUS);
  CHECK(notes[1].kind.empty());
  CHECK(notes[2].is_load());
  CHECK(notes[2].file == c.file);
  CHECK(notes[2].content_hash == c.content_hash);

  const std::string torn = crash_report::format_note(a).substr(0, 20);  // the writer died mid-line
  notes = crash_report::parse_notes(
      good + "garbage line\ncrash v1 6 task zz 00\ncrash v1 6 task  00\ncrash v1 6 boot 61 62\n" + torn, &unreadable);
  CHECK(notes.size() == 4);
  CHECK(unreadable == 5);

  CHECK(crash_report::signal_name(SIGABRT) == "SIGABRT");
  CHECK(crash_report::signal_name(64) == "signal 64");
}

namespace {

// Code to register as a plugin's, in a section of its own so that its range is exact (the linker defines
// __start_/__stop_ symbols around it): a fault in it, an abort() called from it (the signal then comes
// from the C library, this function's frame below), and a call from it into the host's code that aborts.
[[gnu::noinline]] void host_code_that_aborts() { std::abort(); }
[[gnu::noinline, gnu::section("th_test_plugin_code")]] void fault_in_plugin_code() {
  *reinterpret_cast<volatile int*>(uintptr_t{8}) = 1;
}
[[gnu::noinline, gnu::section("th_test_plugin_code")]] void abort_from_plugin_code() { std::abort(); }
// Its call is its last instruction (the callee never returns), so its return address is the first byte
// past the section: the walk must look up the call, not the return address.
[[gnu::noinline, gnu::section("th_test_plugin_code")]] void plugin_calls_host_that_aborts() { host_code_that_aborts(); }

extern "C" const char __start_th_test_plugin_code[];  // NOLINT: linker-defined
extern "C" const char __stop_th_test_plugin_code[];   // NOLINT

crash_report::PluginCode register_test_plugin(const std::string& file, const std::string& hash) {
  return crash_report::PluginCode(reinterpret_cast<uintptr_t>(__start_th_test_plugin_code),
                                  reinterpret_cast<uintptr_t>(__stop_th_test_plugin_code), file, hash);
}

}  // namespace

TEST_CASE("a crash outside any scope, in registered plugin code or below a call from it, names the plugin's file") {
  const std::string hash(64, 'c');
  SUBCASE("the faulting instruction is plugin code") {
    const Crash c = crash_in_child([&] {
      const auto code = register_test_plugin("/plugins/threads.so", hash);
      fault_in_plugin_code();
    });
    REQUIRE(WIFSIGNALED(c.status));
    CHECK(WTERMSIG(c.status) == SIGSEGV);
    CHECK(c.err.find("fatal SIGSEGV outside any task's call, in the code of plugin file '/plugins/threads.so'") !=
          std::string::npos);
    const auto notes = crash_report::parse_notes(c.note);
    REQUIRE(notes.size() == 1);
    CHECK(notes[0].what == crash_report::Note::What::code);
    CHECK(notes[0].file == "/plugins/threads.so");
    CHECK(notes[0].content_hash == hash);
  }
  SUBCASE("abort() called from plugin code, on a thread the host did not start") {
    const Crash c = crash_in_child([&] {
      const auto code = register_test_plugin("/plugins/threads.so", hash);
      std::thread(abort_from_plugin_code).join();
    });
    REQUIRE(WIFSIGNALED(c.status));
    CHECK(WTERMSIG(c.status) == SIGABRT);
    const auto notes = crash_report::parse_notes(c.note);
    REQUIRE(notes.size() == 1);
    CHECK(notes[0].what == crash_report::Note::What::code);
  }
  SUBCASE("plugin code called the host's code, which crashed: the host's bug, nothing blamed") {
    const Crash c = crash_in_child([&] {
      const auto code = register_test_plugin("/plugins/threads.so", hash);
      std::thread(plugin_calls_host_that_aborts).join();
    });
    REQUIRE(WIFSIGNALED(c.status));
    CHECK(WTERMSIG(c.status) == SIGABRT);
    CHECK(c.err.find("outside any task's call or plugin load") != std::string::npos);
    CHECK(c.note.empty());
  }
  SUBCASE("a range no longer registered (its library unloaded) names nothing") {
    const Crash c = crash_in_child([&] {
      { const auto code = register_test_plugin("/plugins/gone.so", hash); }
      fault_in_plugin_code();
    });
    REQUIRE(WIFSIGNALED(c.status));
    CHECK(c.err.find("outside any task's call or plugin load") != std::string::npos);
    CHECK(c.note.empty());
  }
  SUBCASE("a range mapped again takes over the one registered before it") {
    const Crash c = crash_in_child([&] {
      auto old = std::make_unique<crash_report::PluginCode>(
          reinterpret_cast<uintptr_t>(__start_th_test_plugin_code),
          reinterpret_cast<uintptr_t>(__stop_th_test_plugin_code), "/plugins/old.so", std::string(64, 'a'));
      const auto code = register_test_plugin("/plugins/new.so", hash);
      old.reset();  // the old registration goes after the new one took its addresses: the new one stays
      fault_in_plugin_code();
    });
    REQUIRE(WIFSIGNALED(c.status));
    const auto notes = crash_report::parse_notes(c.note);
    REQUIRE(notes.size() == 1);
    CHECK(notes[0].file == "/plugins/new.so");
  }
}
