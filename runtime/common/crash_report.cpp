#include "common/crash_report.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace taskhost::crash_report {
namespace {

// Initial-exec TLS of the executable: reading it in a signal handler allocates nothing and takes no lock.
thread_local const std::string* current_task_id = nullptr;
thread_local const std::string* current_kind = nullptr;

int note_fd = -1;
constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP};
constexpr std::string_view kNoteTag = "crash v1 ";
// A field longer than this is cut in the note (it then names no task the store knows; ids are <= 256).
constexpr size_t kMaxNoteField = 512;

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
    static constexpr char kHex[] = "0123456789abcdef";
    for (size_t i = 0; i < s.size() && i < kMaxNoteField; ++i) {
      const auto b = static_cast<unsigned char>(s[i]);
      put(kHex[b >> 4]);
      put(kHex[b & 15]);
    }
  }
  // For people: printable ASCII as it is, the rest (and the quote) as \xNN.
  void quoted(std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
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

void note_line(Line& note, int sig, std::string_view task_id, std::string_view kind) {
  note.text(kNoteTag);
  note.number(static_cast<unsigned>(sig));
  note.text(" ");
  note.hex(task_id);
  note.text(" ");
  note.hex(kind);
  note.text("\n");
}

void on_fatal_signal(int sig, siginfo_t*, void*) {
  const int saved_errno = errno;
  const std::string* id = current_task_id;
  const std::string* kind = current_kind;
  {
    Line say;
    say.text("taskhost: fatal ");
    signal_text(say, sig);
    if (id != nullptr && kind != nullptr) {
      say.text(" in a call of task ");
      say.quoted(*id);
      say.text(" (kind ");
      say.quoted(*kind);
      say.text("), most likely in its plugin's code; the host ends with it (a plugin that may crash belongs in "
               "[plugins] isolation = \"process\")\n");
    } else {
      say.text(" outside any task's call\n");
    }
    say.flush_to(STDERR_FILENO);
  }
  if (id != nullptr && kind != nullptr && note_fd >= 0) {
    Line note;
    note_line(note, sig, *id, *kind);
    note.flush_to(note_fd);
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

void install(int fd) {
  note_fd = fd;
  struct sigaction sa {};
  sa.sa_sigaction = on_fatal_signal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (int sig : kSignals) ::sigaction(sig, &sa, nullptr);
}

std::vector<Note> parse_notes(std::string_view text, size_t* unreadable) {
  std::vector<Note> out;
  size_t bad = 0;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    const bool whole = eol != std::string_view::npos;  // a last line without its newline was torn
    std::string_view line = text.substr(0, whole ? eol : text.size());
    text.remove_prefix(whole ? eol + 1 : text.size());
    if (line.empty()) continue;
    Note n;
    bool ok = whole && line.substr(0, kNoteTag.size()) == kNoteTag;
    if (ok) {
      line.remove_prefix(kNoteTag.size());
      const size_t a = line.find(' ');
      const size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
      ok = b != std::string_view::npos && a > 0;
      if (ok) {
        const std::string_view sig = line.substr(0, a);
        ok = sig.find_first_not_of("0123456789") == std::string_view::npos && sig.size() <= 3;
        if (ok) n.signal = std::stoi(std::string(sig));
        ok = ok && unhex(line.substr(a + 1, b - a - 1), n.task_id) && unhex(line.substr(b + 1), n.kind) &&
             !n.task_id.empty();
      }
    }
    if (ok) {
      out.push_back(std::move(n));
    } else {
      ++bad;
    }
  }
  if (unreadable != nullptr) *unreadable = bad;
  return out;
}

std::string format_note(const Note& note) {
  Line line;
  note_line(line, note.signal, note.task_id, note.kind);
  return std::string(line.view());
}

std::string signal_name(int sig) {
  if (const char* name = name_of(sig)) return name;
  return "signal " + std::to_string(sig);
}

}  // namespace taskhost::crash_report
