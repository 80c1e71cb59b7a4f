#include "common/crash_report.hpp"

#include <link.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>

namespace taskhost::crash_report {
namespace {

// Initial-exec TLS of the executable: reading it in a signal handler allocates nothing and takes no lock.
thread_local const std::string* current_task_id = nullptr;
thread_local const std::string* current_kind = nullptr;
thread_local const std::string* current_file = nullptr;
thread_local const std::string* current_hash = nullptr;

// Written by install() while a handler on another thread may read them: atomics (lock-free) are safe there.
std::atomic<int> note_fd{-1};
std::atomic<pid_t> host_pid{0};
// Each thread that runs tasks' calls or plugin loads handles its fatal signals on a stack of its own
// (AltStack), so that a plugin's runaway recursion is noted too instead of faulting again in the handler.
constexpr size_t kAltStackBytes = 64u << 10;
constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP};
constexpr std::string_view kNoteTag = "crash v1 ";
constexpr std::string_view kTaskTag = "task";  // then the task id and its kind
constexpr std::string_view kLoadTag = "load";  // then the file and its content hash
constexpr std::string_view kCodeTag = "code";  // the same fields: a crash in the file's code, outside any scope
constexpr std::string_view kLoadBeginTag = "loading";  // the same fields, signal 0
constexpr std::string_view kLoadEndTag = "loaded";
constexpr std::string_view kCleanStopTag = "stopped";  // then "686f7374" ("host") and nothing
// A field longer than this is cut in the note (it then names no task the store knows; ids are <= 256).
constexpr size_t kMaxNoteField = 512;

// The registered code ranges (PluginCode), read by the handler without a lock. Writers take code_mu and
// bump a slot's `seq` to odd while they change it, even again after (a seqlock): the handler copies what
// it found and keeps it only if `seq` was even and unchanged around the copy, so a slot being reused as
// it reads is skipped, never mixed with the next one.
struct CodeSlot {
  std::atomic<uint64_t> seq{0};
  std::atomic<uintptr_t> begin{0};  // 0: free
  std::atomic<uintptr_t> end{0};
  uint64_t owner = 0;  // the registration holding it (code_mu)
  char file[kMaxNoteField];
  size_t file_size = 0;
  char hash[kMaxNoteField];
  size_t hash_size = 0;
};
constexpr size_t kCodeSlots = 256;
std::array<CodeSlot, kCodeSlots> code_slots;
std::mutex code_mu;
uint64_t next_code_owner = 1;  // code_mu

// The host executable's own code (install()): a frame there means the host, not a plugin, called what
// crashed.
std::atomic<uintptr_t> host_code_begin{0};
std::atomic<uintptr_t> host_code_end{0};

// The file and hash of a plugin code range, copied out of its slot by the handler.
struct FoundCode {
  char file[kMaxNoteField];
  size_t file_size = 0;
  char hash[kMaxNoteField];
  size_t hash_size = 0;
  std::string_view file_view() const { return {file, file_size}; }
  std::string_view hash_view() const { return {hash, hash_size}; }
};

bool plugin_code_at(uintptr_t address, FoundCode* out) {
  if (address == 0) return false;
  for (const CodeSlot& slot : code_slots) {
    const uint64_t before = slot.seq.load(std::memory_order_acquire);
    if ((before & 1) != 0) continue;
    const uintptr_t begin = slot.begin.load(std::memory_order_relaxed);
    if (begin == 0 || address < begin || address >= slot.end.load(std::memory_order_relaxed)) continue;
    out->file_size = std::min(slot.file_size, kMaxNoteField);
    std::memcpy(out->file, slot.file, out->file_size);
    out->hash_size = std::min(slot.hash_size, kMaxNoteField);
    std::memcpy(out->hash, slot.hash, out->hash_size);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (slot.seq.load(std::memory_order_relaxed) == before) return true;
  }
  return false;
}

bool host_code_at(uintptr_t address) {
  return address >= host_code_begin.load(std::memory_order_relaxed) &&
         address < host_code_end.load(std::memory_order_relaxed);
}

uintptr_t interrupted_instruction(const void* context) {
  if (context == nullptr) return 0;
  const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;
#endif
}

// The walk up the crashing thread's stack: past the handler's own frames to the interrupted one, then
// caller by caller until the first frame that is plugin code (blamed) or host code (nothing blamed: the
// host called what crashed), skipping the system libraries in between (the C library's abort(), say).
// It stops at the first such frame, so it never unwinds the frames above: a smashed stack's garbage.
struct Walk {
  uintptr_t interrupted = 0;
  bool past_handler = false;
  int frames = 0;
  bool found = false;
  FoundCode* out = nullptr;
};
constexpr int kMaxFrames = 32;

_Unwind_Reason_Code walk_step(_Unwind_Context* frame, void* arg) {
  auto* walk = static_cast<Walk*>(arg);
  if (++walk->frames > kMaxFrames) return _URC_END_OF_STACK;
  int before_instruction = 0;
  const uintptr_t ip = _Unwind_GetIPInfo(frame, &before_instruction);
  if (!walk->past_handler) {
    // The interrupted frame is the signal frame: its IP is the interrupted instruction itself.
    if (ip != walk->interrupted) return _URC_NO_REASON;
    walk->past_handler = true;
  }
  // A caller's IP is its return address, which for a call to a function that does not return (abort) may
  // be the first byte past the caller: the call itself is the byte before.
  const uintptr_t at = before_instruction != 0 ? ip : ip - 1;
  if (plugin_code_at(at, walk->out)) {
    walk->found = true;
    return _URC_END_OF_STACK;
  }
  return host_code_at(at) ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// The plugin code the crash happened in: the interrupted instruction, else the nearest caller on this
// thread's stack that is not system library code, if that is a plugin's.
bool crashing_code(const void* context, FoundCode* out) {
  const uintptr_t interrupted = interrupted_instruction(context);
  if (interrupted == 0) return false;
  if (plugin_code_at(interrupted, out)) return true;
  if (host_code_at(interrupted)) return false;
  Walk walk;
  walk.interrupted = interrupted;
  walk.out = out;
  _Unwind_Backtrace(walk_step, &walk);
  return walk.found;
}

// The executable segments of the main program (the first object dl_iterate_phdr reports).
void find_host_code() {
  ::dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) -> int {
        uintptr_t begin = UINTPTR_MAX, end = 0;
        for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
          begin = std::min<uintptr_t>(begin, info->dlpi_addr + ph.p_vaddr);
          end = std::max<uintptr_t>(end, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
        }
        if (end != 0) {
          host_code_begin.store(begin, std::memory_order_relaxed);
          host_code_end.store(end, std::memory_order_relaxed);
        }
        return 1;  // the first object only
      },
      nullptr);
}

const char* name_of(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGSYS: return "SIGSYS";
    case SIGTRAP: return "SIGTRAP";
    default: return nullptr;
  }
}

constexpr char kHex[] = "0123456789abcdef";

// A fixed buffer filled without allocating: everything the handler writes is built in one, so that one
// write(2) puts a whole line out (O_APPEND keeps concurrent crashing threads' lines whole).
class Line {
 public:
  void text(std::string_view s) {
    for (char c : s) put(c);
  }
  void number(unsigned v) {
    char digits[12];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0 && n < 12);
    while (n > 0) put(digits[--n]);
  }
  void hex(std::string_view s) {
    for (size_t i = 0; i < s.size() && i < kMaxNoteField; ++i) {
      const auto b = static_cast<unsigned char>(s[i]);
      put(kHex[b >> 4]);
      put(kHex[b & 15]);
    }
  }
  // For people: printable ASCII as it is, the rest (and the quote) as \xNN.
  void quoted(std::string_view s) {
    put('\'');
    for (size_t i = 0; i < s.size() && i < kMaxNoteField; ++i) {
      const auto b = static_cast<unsigned char>(s[i]);
      if (b >= 0x20 && b < 0x7f && b != '\'' && b != '\\') {
        put(static_cast<char>(b));
      } else {
        text("\\x");
        put(kHex[b >> 4]);
        put(kHex[b & 15]);
      }
    }
    put('\'');
  }
  std::string_view view() const { return {buf_, size_}; }
  void flush_to(int fd) const {
    size_t off = 0;
    while (off < size_) {
      const ssize_t n = ::write(fd, buf_ + off, size_ - off);
      if (n <= 0) return;  // nothing to do about it here
      off += static_cast<size_t>(n);
    }
  }

 private:
  void put(char c) {
    if (size_ < sizeof buf_) buf_[size_++] = c;
  }
  char buf_[4096];
  size_t size_ = 0;
};

void signal_text(Line& line, int sig) {
  if (const char* name = name_of(sig)) {
    line.text(name);
  } else {
    line.text("signal ");
    line.number(static_cast<unsigned>(sig));
  }
}

void note_line(Line& note, int sig, std::string_view what, std::string_view first, std::string_view second) {
  note.text(kNoteTag);
  note.number(static_cast<unsigned>(sig));
  note.text(" ");
  note.text(what);
  note.text(" ");
  note.hex(first);
  note.text(" ");
  note.hex(second);
  note.text("\n");
}

// " in a call of task 'ID' (kind 'K'), most likely in its plugin's code; the host ends with it": what the
// signal handler and the exit hook say after naming how the process ends.
void name_task_call(Line& say, const std::string& id, const std::string& kind) {
  say.text(" in a call of task ");
  say.quoted(id);
  say.text(" (kind ");
  say.quoted(kind);
  say.text("), most likely in its plugin's code; the host ends with it");
}

// Whether this process brought the signal on itself (a fault, or abort()/raise() on some thread of it):
// only then did the thread's task or load cause it. A SIGABRT or SIGSEGV sent from outside (a watchdog, an
// operator) blames nothing that happens to run on the thread it lands on.
bool self_inflicted(const siginfo_t* info) {
  if (info == nullptr) return false;
  if (info->si_code > 0) return true;  // raised by the kernel for this thread's own instruction
  return (info->si_code == SI_TKILL || info->si_code == SI_USER) && info->si_pid == ::getpid();
}

void on_fatal_signal(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  // A process a plugin forked (without exec) inherits this handler and the thread's scope: its crash is not
  // the host's, and must note nothing.
  const bool host = ::getpid() == host_pid.load(std::memory_order_relaxed);
  const bool attributable = host && self_inflicted(info);
  const std::string* id = current_task_id;
  const std::string* kind = current_kind;
  const std::string* file = current_file;
  const std::string* hash = current_hash;
  const bool in_task = attributable && id != nullptr && kind != nullptr;
  const bool in_load = attributable && !in_task && file != nullptr && hash != nullptr;
  FoundCode found;
  const bool code = attributable && !in_task && !in_load && crashing_code(context, &found);
  const std::string_view code_file = found.file_view();
  const std::string_view code_hash = found.hash_view();
  const int fd = note_fd.load(std::memory_order_relaxed);
  // The note first: stderr may be a pipe nobody reads (it blocks) or a closed one (SIGPIPE is blocked in
  // here, so the write fails instead of killing the process before its note is out).
  if ((in_task || in_load || code) && fd >= 0) {
    Line note;
    if (in_task) {
      note_line(note, sig, kTaskTag, *id, *kind);
    } else if (in_load) {
      note_line(note, sig, kLoadTag, *file, *hash);
    } else {
      note_line(note, sig, kCodeTag, code_file, code_hash);
    }
    note.flush_to(fd);
  }
  if (host) {
    Line say;
    say.text("taskhost: fatal ");
    signal_text(say, sig);
    if (in_task) {
      name_task_call(say, *id, *kind);
      say.text(" (a plugin that may crash belongs in [plugins] isolation = \"process\")\n");
    } else if (in_load) {
      say.text(" while loading plugin file ");
      say.quoted(*file);
      say.text("; the host ends with it");
      if (fd >= 0) say.text(" (noted: the next start does not load this content in-process again)");
      say.text("\n");
    } else if (code) {
      say.text(" outside any task's call, in the code of plugin file ");
      say.quoted(code_file);
      say.text(" (a thread of its own, or its executor's destroy); the host ends with it");
      if (fd >= 0) say.text(" (noted: the next start does not load this content in-process again)");
      say.text("\n");
    } else if (!attributable) {
      say.text(" sent by process ");
      say.number(info != nullptr ? static_cast<unsigned>(info->si_pid) : 0u);
      say.text("\n");
    } else {
      say.text(" outside any task's call or plugin load\n");
    }
    say.flush_to(STDERR_FILENO);
  }
  // Die of the same signal: with the default action restored, the signal raised here is delivered as
  // soon as this handler returns (it is blocked while the handler runs), and a fault that was not raised
  // faults again on the same instruction. The exit status and core dump stay the crash's own.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);
  errno = saved_errno;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool unhex(std::string_view in, std::string& out) {
  if (in.size() % 2 != 0) return false;
  out.clear();
  out.reserve(in.size() / 2);
  for (size_t i = 0; i < in.size(); i += 2) {
    const int hi = hex_digit(in[i]), lo = hex_digit(in[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

}  // namespace

TaskScope::TaskScope(const std::string& task_id, const std::string& kind) noexcept
    : outer_id_(current_task_id), outer_kind_(current_kind) {
  current_task_id = &task_id;
  current_kind = &kind;
}

TaskScope::~TaskScope() {
  current_task_id = outer_id_;
  current_kind = outer_kind_;
}

namespace {

// An intent or mark line for the notes file, from normal code (not the handler); nothing when the handler
// is not installed in this process.
void note_mark(std::string_view what, std::string_view first, std::string_view second) {
  const int fd = note_fd.load(std::memory_order_relaxed);
  if (fd < 0 || ::getpid() != host_pid.load(std::memory_order_relaxed)) return;
  Line line;
  note_line(line, 0, what, first, second);
  line.flush_to(fd);
}

// A plugin that calls exit() during a task's call or its load: the process ends without a signal. Runs on
// the exiting thread, so its scope says whose call (or which file) it was. The process then ends with
// kPluginExitStatus rather than the plugin's own status: a plugin's exit(0) looked to a supervisor like a
// clean stop, and one that restarts on failure left the host down.
void on_exit_hook() {
  // A process the plugin forked inherits the thread's scope: its exit is its own.
  if (::getpid() != host_pid.load(std::memory_order_relaxed)) return;
  const std::string* id = current_task_id;
  const std::string* kind = current_kind;
  const std::string* file = current_file;
  Line say;
  if (id != nullptr && kind != nullptr) {
    note_mark(kTaskTag, *id, *kind);
    say.text("taskhost: exit()");
    name_task_call(say, *id, *kind);
  } else if (file != nullptr) {
    // The load's begin mark without its end names the file to the next start (CrashLedger).
    say.text("taskhost: exit() while loading plugin file ");
    say.text(*file);
    say.text("; the host ends with it");
  } else {
    return;
  }
  static_assert(kPluginExitStatus == 70, "the line below says so");
  say.text(", with status 70\n");
  say.flush_to(STDERR_FILENO);
  ::_exit(kPluginExitStatus);
}

}  // namespace

LoadScope::LoadScope(const std::string& file, const std::string& content_hash) noexcept
    : outer_file_(current_file), outer_hash_(current_hash) {
  current_file = &file;
  current_hash = &content_hash;
  note_mark(kLoadBeginTag, file, content_hash);
}

LoadScope::~LoadScope() {
  note_mark(kLoadEndTag, *current_file, *current_hash);
  current_file = outer_file_;
  current_hash = outer_hash_;
}

void note_clean_stop() { note_mark(kCleanStopTag, "host", ""); }

std::vector<int> reclaim() {
  std::vector<int> taken_back;
  if (host_pid.load(std::memory_order_relaxed) != ::getpid()) return taken_back;
  for (int sig : kSignals) {
    struct sigaction now {};
    if (::sigaction(sig, nullptr, &now) != 0) continue;
    if ((now.sa_flags & SA_SIGINFO) != 0 && now.sa_sigaction == on_fatal_signal) continue;
    taken_back.push_back(sig);
  }
  if (!taken_back.empty()) install(note_fd.load(std::memory_order_relaxed));
  return taken_back;
}

void install(int fd) {
  // The unwinder's first walk sets up what later ones use: made here, never first in the handler.
  static const bool unwinder_ready = [] {
    find_host_code();
    _Unwind_Backtrace([](_Unwind_Context*, void*) { return _URC_END_OF_STACK; }, nullptr);
    return true;
  }();
  (void)unwinder_ready;
  note_fd.store(fd, std::memory_order_relaxed);
  host_pid.store(::getpid(), std::memory_order_relaxed);
  static const bool exit_hooked = std::atexit(on_exit_hook) == 0 && std::at_quick_exit(on_exit_hook) == 0;
  (void)exit_hooked;
  struct sigaction sa {};
  sa.sa_sigaction = on_fatal_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGPIPE);
  for (int sig : kSignals) sigaddset(&sa.sa_mask, sig);  // a second fatal signal waits for the first to end
  for (int sig : kSignals) ::sigaction(sig, &sa, nullptr);
}

PluginCode::PluginCode(uintptr_t begin, uintptr_t end, std::string_view file, std::string_view content_hash) noexcept
    : slot_(-1), owner_(0) {
  if (begin == 0 || end <= begin) return;
  std::lock_guard lock(code_mu);
  const auto write = [](CodeSlot& slot, auto&& change) {
    slot.seq.fetch_add(1, std::memory_order_relaxed);  // odd: being changed
    std::atomic_thread_fence(std::memory_order_release);
    change();
    slot.seq.fetch_add(1, std::memory_order_release);
  };
  // A range that overlaps ours belongs to a library unloaded since (its registration is not gone yet, or
  // was kept for a library that stayed resident and is now gone after all): the address is ours now.
  for (CodeSlot& slot : code_slots) {
    const uintptr_t b = slot.begin.load(std::memory_order_relaxed);
    if (b != 0 && b < end && begin < slot.end.load(std::memory_order_relaxed)) {
      write(slot, [&] {
        slot.begin.store(0, std::memory_order_relaxed);
        slot.owner = 0;
      });
    }
  }
  for (size_t i = 0; i < kCodeSlots; ++i) {
    CodeSlot& slot = code_slots[i];
    if (slot.owner != 0) continue;
    owner_ = next_code_owner++;
    write(slot, [&] {
      slot.owner = owner_;
      slot.file_size = std::min(file.size(), kMaxNoteField);
      std::memcpy(slot.file, file.data(), slot.file_size);
      slot.hash_size = std::min(content_hash.size(), kMaxNoteField);
      std::memcpy(slot.hash, content_hash.data(), slot.hash_size);
      slot.end.store(end, std::memory_order_relaxed);
      slot.begin.store(begin, std::memory_order_relaxed);
    });
    slot_ = static_cast<int>(i);
    return;
  }
}

PluginCode::~PluginCode() {
  if (slot_ < 0) return;
  std::lock_guard lock(code_mu);
  CodeSlot& slot = code_slots[static_cast<size_t>(slot_)];
  if (slot.owner != owner_) return;  // taken over by a library mapped at the same address since
  slot.seq.fetch_add(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  slot.begin.store(0, std::memory_order_relaxed);
  slot.owner = 0;
  slot.seq.fetch_add(1, std::memory_order_release);
}

AltStack::AltStack() : memory_(nullptr) {
  stack_t current{};
  if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0) return;  // has one: keep it
  memory_ = new (std::nothrow) char[kAltStackBytes];
  if (memory_ == nullptr) return;
  stack_t ss{};
  ss.ss_sp = memory_;
  ss.ss_size = kAltStackBytes;
  if (::sigaltstack(&ss, nullptr) != 0) {
    delete[] memory_;
    memory_ = nullptr;
  }
}

AltStack::~AltStack() {
  if (memory_ == nullptr) return;
  stack_t off{};
  off.ss_flags = SS_DISABLE;
  ::sigaltstack(&off, nullptr);  // before the memory goes
  delete[] memory_;
}

std::vector<Note> parse_notes(std::string_view text, size_t* unreadable) {
  std::vector<Note> out;
  size_t bad = 0;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const bool whole = eol != std::string_view::npos;  // a last line without its newline was torn
    const std::string_view line = text.substr(0, whole ? eol : text.size());
    text.remove_prefix(whole ? eol + 1 : text.size());
    if (line.empty()) continue;
    // "crash v1 SIGNO task|load HEX HEX"
    std::vector<std::string_view> fields;
    if (whole && line.substr(0, kNoteTag.size()) == kNoteTag) {
      std::string_view rest = line.substr(kNoteTag.size());
      for (size_t sp; (sp = rest.find(' ')) != std::string_view::npos; rest.remove_prefix(sp + 1)) {
        fields.push_back(rest.substr(0, sp));
      }
      fields.push_back(rest);
    }
    Note n;
    std::string first, second;
    const auto what_of = [](std::string_view tag) -> std::optional<Note::What> {
      if (tag == kTaskTag) return Note::What::task;
      if (tag == kLoadTag) return Note::What::load;
      if (tag == kCodeTag) return Note::What::code;
      if (tag == kLoadBeginTag) return Note::What::load_begin;
      if (tag == kLoadEndTag) return Note::What::load_end;
      if (tag == kCleanStopTag) return Note::What::clean_stop;
      return std::nullopt;
    };
    const std::optional<Note::What> what = fields.size() == 4 ? what_of(fields[1]) : std::nullopt;
    const bool ok = what && !fields[0].empty() && fields[0].size() <= 3 &&
                    fields[0].find_first_not_of("0123456789") == std::string_view::npos && unhex(fields[2], first) &&
                    unhex(fields[3], second) && !first.empty();
    if (!ok) {
      ++bad;
      continue;
    }
    n.what = *what;
    n.signal = std::stoi(std::string(fields[0]));
    if (n.what == Note::What::task) {
      n.task_id = std::move(first);
      n.kind = std::move(second);
    } else if (n.what != Note::What::clean_stop) {
      n.file = std::move(first);
      n.content_hash = std::move(second);
    }
    out.push_back(std::move(n));
  }
  if (unreadable != nullptr) *unreadable = bad;
  return out;
}

std::string format_note(const Note& note) {
  Line line;
  switch (note.what) {
    case Note::What::task: note_line(line, note.signal, kTaskTag, note.task_id, note.kind); break;
    case Note::What::load: note_line(line, note.signal, kLoadTag, note.file, note.content_hash); break;
    case Note::What::code: note_line(line, note.signal, kCodeTag, note.file, note.content_hash); break;
    case Note::What::load_begin: note_line(line, 0, kLoadBeginTag, note.file, note.content_hash); break;
    case Note::What::load_end: note_line(line, 0, kLoadEndTag, note.file, note.content_hash); break;
    case Note::What::clean_stop: note_line(line, 0, kCleanStopTag, "host", ""); break;
  }
  return std::string(line.view());
}

std::string signal_name(int sig) {
  if (sig == 0) return "exit()";
  if (const char* name = name_of(sig)) return name;
  return "signal " + std::to_string(sig);
}

}  // namespace taskhost::crash_report
