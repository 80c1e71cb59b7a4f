// Which task a fatal signal interrupted, so that a plugin that crashes the host is named, and a task
// that crashes it every time it starts can be failed instead of started again (a crash loop).
//
// A plugin runs in the host's process unless isolated, and a crash in its code (a bad pointer, an
// abort, an exception escaping it) ends the host. Recovery re-attaches the tasks that were running, so
// a task whose start crashes the host crashed it again on every restart, and the host stayed down until
// someone found and removed the plugin file. Here every call a task's strand runs names the task on its
// thread (TaskScope, two thread-local pointers); a fatal signal handler installed by `taskhost serve`
// writes, before the process dies of the signal as it would have:
//   - a line to stderr naming the signal, the task and its kind;
//   - a note to the state directory's crash-notes file, which the next run reads (parse_notes) to count
//     the task's crashes (transport/local: [tasks] max_plugin_crashes).
//
// Only calls on the host's threads are attributed: a crash on a thread the plugin started itself, or
// while loading a plugin, names no task (stderr still names the signal). The handler is async-signal-safe:
// it formats by hand, writes with write(2), then restores the default action and raises the signal again,
// so the exit status and any core dump are those of the original crash.
//
// Thread rule: TaskScope is per thread; install() once, from the main thread, before tasks run.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace taskhost::crash_report {

// Names the task whose call runs on this thread for the scope's life (nests: the outer one is restored).
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

// Installs the handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS and SIGTRAP. `note_fd` (opened
// with O_APPEND) receives one line per attributed crash; -1 writes only to stderr.
void install(int note_fd);

// install(note_fd) for the object's life; then install(-1), so that the handler never writes to a note
// file its owner closed.
class Installed {
 public:
  explicit Installed(int note_fd) { install(note_fd); }
  ~Installed() { install(-1); }
  Installed(const Installed&) = delete;
  Installed& operator=(const Installed&) = delete;
};

// One line of the notes file: the signal and the task it interrupted.
struct Note {
  int signal = 0;
  std::string task_id;
  std::string kind;
};
// Parses a notes file's text. Lines it cannot read (a torn write from a process killed mid-line) are
// skipped and counted in `*unreadable`.
std::vector<Note> parse_notes(std::string_view text, size_t* unreadable = nullptr);
// The note line for `note` exactly as the handler writes it (for tests and tools).
std::string format_note(const Note& note);

// "SIGSEGV", "SIGABRT", ...; "signal N" for others.
std::string signal_name(int sig);

}  // namespace taskhost::crash_report
