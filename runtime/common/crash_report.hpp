// What a fatal signal interrupted — a task's call, or the loading of a plugin file — so that a plugin that
// crashes the host is named, and neither a task that crashes it on every start nor a file that crashes it
// while loading can keep it in a crash loop.
//
// A plugin runs in the host's process unless isolated, and a crash in its code (a bad pointer, an
// abort, an exception escaping it) ends the host. Recovery re-attaches the tasks that were running, so
// a task whose start crashes the host crashed it again on every restart; and a file whose initializers
// or factories crash was loaded again by every restart's first scan. The host stayed down until someone
// found and removed the file. Here every call a task's strand runs names the task on its thread
// (TaskScope), and every in-process load names the file and its content hash (LoadScope): two
// thread-local pointers each. A fatal signal handler installed by `taskhost serve` writes, before the
// process dies of the signal as it would have:
//   - a line to stderr naming the signal and the task (and kind) or the file;
//   - a note to the state directory's crash-notes file (host/crash_ledger.hpp), which the next run reads
//     (parse_notes): a task is counted ([tasks] max_plugin_crashes), a file's content is not loaded
//     in-process again.
//
// A crash outside any task's call or load — on a thread the plugin started itself, in a plugin call the
// host makes outside a task (an executor's destroy), in its destructors as it unloads — is named by the
// code it ran: each in-process plugin library registers its executable segments (PluginCode). The handler
// blames a plugin whose code holds the interrupted instruction or, when that is system library code (an
// abort() called from plugin code stops in the C library), the nearest caller on the crashing thread's
// stack that is not: plugin code is blamed, the host's own code blames nothing (the host called what
// crashed). Such a note quarantines the content as a load crash does: with no task to blame, not loading it
// in-process again is the only end to the crash loop.
//
// The handler is async-signal-safe: it formats by hand, writes with write(2), then restores the default
// action and raises the signal again, so the exit status and any core dump are those of the original
// crash. Its one exception is that stack walk (_Unwind_Backtrace), made only when no scope names the crash
// and the interrupted instruction is no one's, and stopped at the first frame that is plugin or host code
// (the frames above a smashed one are never read). Its unwinder is set up at install() and finds each
// frame's unwind table without the loader's lock (glibc >= 2.35 with GCC >= 12's libgcc, Debian 12's); it
// does take a lock of libgcc's own if a plugin registered unwind tables itself (__register_frame, a JIT),
// and a crash while that lock is held hangs instead of ending: a risk taken for naming the plugin.
//
// Thread rule: scopes and AltStack are per thread; install() from the main thread, before plugins load (it
// may be called again: Installed undoes it with install(-1)).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::crash_report {

// The exit status of a host a plugin ended with exit() during a task's call or a load (EX_SOFTWARE):
// whatever status the plugin passed, never 0, which a supervisor takes for a clean stop.
inline constexpr int kPluginExitStatus = 70;

// Names the task whose call runs on this thread for the scope's life (nests: the outer scope is restored).
// The strings must outlive the scope (they are the task's own immutable id and kind).
class TaskScope {
 public:
  TaskScope(const std::string& task_id, const std::string& kind) noexcept;
  ~TaskScope();
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;

 private:
  const std::string* outer_id_;
  const std::string* outer_kind_;
};

// Names the plugin file this thread is loading in-process (dlopen, its initializers, its factories), the
// same way. The strings must outlive the scope.
class LoadScope {
 public:
  LoadScope(const std::string& file, const std::string& content_hash) noexcept;
  ~LoadScope();
  LoadScope(const LoadScope&) = delete;
  LoadScope& operator=(const LoadScope&) = delete;

 private:
  const std::string* outer_file_;
  const std::string* outer_hash_;
};

// Names `file` (content `content_hash`) as the owner of the code in [begin, end) for the object's life:
// a crash there, or below a call from there, outside any TaskScope or LoadScope, is noted as that file's
// (Note::What::code). A new range takes over any registered range it overlaps (a library unloaded since,
// whose registration was not destroyed yet). At most 256 ranges are held at once; past that a range is
// not registered (its crashes then name nothing). The strings are copied (at most 512 bytes each).
// Thread rule: construct and destroy on any thread (one lock); the handler reads the ranges without it.
class PluginCode {
 public:
  PluginCode(uintptr_t begin, uintptr_t end, std::string_view file, std::string_view content_hash) noexcept;
  ~PluginCode();
  PluginCode(const PluginCode&) = delete;
  PluginCode& operator=(const PluginCode&) = delete;
  // The range stays registered after this object is gone (a library that stays mapped for good), until a
  // range registered later overlaps it.
  void keep() noexcept { slot_ = -1; }

 private:
  int slot_;        // -1: not registered, or kept
  uint64_t owner_;  // this registration's id: its slot may have been taken over since
};

// Installs the handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS and SIGTRAP. `note_fd` (opened
// with O_APPEND) receives one line per attributed crash; -1 writes only to stderr. Only a signal the process
// brought on itself is attributed (a fault, abort()), never one sent by another process; a process the
// plugin forked (without exec) notes nothing.
void install(int note_fd);

// A stack of its own for this thread's fatal signal handler, for the object's life: without it a stack
// overflow (a plugin's runaway recursion) faults again in the handler and dies unnoted. Each thread that
// runs tasks' calls or plugin loads makes one first thing (64 KiB).
class AltStack {
 public:
  AltStack();
  ~AltStack();
  AltStack(const AltStack&) = delete;
  AltStack& operator=(const AltStack&) = delete;

 private:
  char* memory_;
};

// Writes the clean stop mark (Installed's destructor does, at the end of a run that stopped cleanly).
void note_clean_stop();

// install(note_fd) for the object's life, with an AltStack for the installing thread; then install(-1), so
// that the handler never writes to a note file its owner closed.
class Installed {
 public:
  explicit Installed(int note_fd) { install(note_fd); }
  ~Installed() {
    note_clean_stop();
    install(-1);
  }
  Installed(const Installed&) = delete;
  Installed& operator=(const Installed&) = delete;

 private:
  AltStack alt_stack_;
};

// One line of the notes file: the signal and what it interrupted — a task's call (task_id, kind), a
// plugin file's load (file, content_hash), or, outside both, a plugin file's code (file, content_hash).
//
// Besides crashes, the file records each in-process load's begin and end and a clean stop: a load that
// began and never ended in a run that did not stop cleanly ended the process some other way — exit() or
// _exit() in its initializers, the dynamic loader giving up on a corrupt file ("Inconsistency detected by
// ld.so", exit 127) — and counts as a crash of that load (CrashLedger). A plugin's exit() during a task's
// call is noted as a crash with signal 0.
struct Note {
  enum class What { task, load, code, load_begin, load_end, clean_stop };
  What what = What::task;
  int signal = 0;  // 0: exit() (task, load); none (the others)
  std::string task_id;
  std::string kind;
  std::string file;
  std::string content_hash;
  bool is_load() const { return what == What::load; }
  bool names_file() const { return what == What::load || what == What::code; }  // a crash its file is blamed for
};
// Parses a notes file's text. Lines it cannot read (a torn write from a process killed mid-line) are
// skipped and counted in `*unreadable`.
std::vector<Note> parse_notes(std::string_view text, size_t* unreadable = nullptr);
// The note line for `note` exactly as the handler writes it (for tests and tools).
std::string format_note(const Note& note);

// Checks that the host's handler is still the one installed for each fatal signal, and installs it again
// where it is not: a plugin (or a runtime it embeds) that sets its own SIGSEGV handler would otherwise turn
// the notes off for every plugin. Returns the signals it took back (none when install() was not called).
std::vector<int> reclaim();

// "SIGSEGV", "SIGABRT", ...; "exit()" for 0; "signal N" for others.
std::string signal_name(int sig);

}  // namespace taskhost::crash_report
