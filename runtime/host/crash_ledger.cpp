#include "host/crash_ledger.hpp"

#include "common/log.hpp"
#include "plugin/file_bytes.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace taskhost {
namespace {

std::string read_all(const std::filesystem::path& file) {
  return plugin::read_file_bytes(file, nullptr).value_or(std::string());  // a missing file reads as empty
}

// Writes `text` to `file` and syncs it; false (logged) on failure.
bool write_synced(const std::filesystem::path& file, std::string_view text, int flags) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
  bool ok = fd >= 0;
  for (size_t off = 0; ok && off < text.size();) {
    const ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    ok = n > 0;
    if (ok) off += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  if (!ok) log::warn("crash ledger: cannot write {}: {}", file.string(), std::strerror(errno));
  if (fd >= 0) ::close(fd);
  return ok;
}

// Why a quarantined content is not loaded in-process: the crash `note` (a load's, or its code's outside
// any task's call).
std::string refusal(const crash_report::Note& note) {
  return fmt::format("this content (sha256 {}) crashed the host {} ({}); it is not loaded "
                     "in-process again: run it with isolation = \"process\", or replace the file (or remove its line "
                     "from the state directory's plugin-quarantine and restart the host) to try again",
                     note.content_hash.substr(0, 16),
                     note.is_load() ? "while loading in-process" : "in-process, in its own code outside any task's call",
                     crash_report::signal_name(note.signal));
}

}  // namespace

CrashLedger::CrashLedger(const std::filesystem::path& state_dir)
    : notes_path_(state_dir / "crash-notes"),
      taken_path_(state_dir / "crash-notes.taken"),
      quarantine_path_(state_dir / "plugin-quarantine") {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  read_quarantine();
  take_notes();
  note_fd_ = ::open(notes_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (note_fd_ < 0) {
    log::warn("crash ledger: cannot open {}: {}; a crash during this run will not be remembered", notes_path_.string(),
              std::strerror(errno));
  }
}

CrashLedger::~CrashLedger() {
  if (note_fd_ >= 0) ::close(note_fd_);
}

void CrashLedger::take_notes() {
  // Notes a run died before settling are still in the taken file: they come first.
  const std::string text = read_all(taken_path_) + read_all(notes_path_);
  if (text.empty()) return;
  // Moved aside whole (a temporary file renamed over the taken one), so that a failure halfway loses
  // nothing. If that fails (a full disk: a crash loop writing core files fills one), the notes stay where
  // they are, to be read again, and are still acted on below.
  const std::filesystem::path tmp = taken_path_.string() + ".tmp";
  std::error_code ec;
  taken_ = write_synced(tmp, text, O_TRUNC) && (std::filesystem::rename(tmp, taken_path_, ec), !ec);
  if (taken_) std::filesystem::remove(notes_path_, ec);

  size_t unreadable = 0;
  std::map<std::string, crash_report::Note> loading;  // loads begun and not ended, by content hash
  const auto load_crash = [&](crash_report::Note note, const std::string& how) {
    log::error("the last run {} while loading plugin file '{}'; its content is not loaded in-process again", how,
               note.file);
    note.what = crash_report::Note::What::load;
    quarantine(note);
  };
  for (auto& note : crash_report::parse_notes(text, &unreadable)) {
    using What = crash_report::Note::What;
    switch (note.what) {
      case What::task: task_crashes_.push_back(std::move(note)); break;
      case What::load_begin: loading[note.content_hash] = std::move(note); break;
      case What::load_end: loading.erase(note.content_hash); break;
      case What::clean_stop: loading.clear(); break;  // a load still running then had hung, not crashed
      case What::load: {
        loading.erase(note.content_hash);
        const std::string how = "died of " + crash_report::signal_name(note.signal);
        load_crash(std::move(note), how);
        break;
      }
      case What::code:
        // No task's call to blame (a thread the plugin started, or its executor's destroy): the content is.
        log::error("the last run died of {} in the code of plugin file '{}', outside any task's call; its content "
                   "is not loaded in-process again",
                   crash_report::signal_name(note.signal), note.file);
        quarantine(note);
        break;
    }
  }
  // Begun and never ended, and no clean stop after: the process ended inside the load without a signal —
  // exit() in the plugin's initializers, or the dynamic loader giving up on a corrupt file (exit 127).
  for (auto& [hash, note] : loading) load_crash(std::move(note), "ended without a signal (exit)");
  if (unreadable > 0) log::warn("crash ledger: {}: {} unreadable line(s) skipped", taken_path_.string(), unreadable);
}

void CrashLedger::read_quarantine() {
  size_t unreadable = 0;
  for (const auto& note : crash_report::parse_notes(read_all(quarantine_path_), &unreadable)) {
    if (note.names_file() && note.content_hash.size() == 64) {
      quarantined_[note.content_hash] = refusal(note);
    } else {
      ++unreadable;
    }
  }
  if (unreadable > 0) log::warn("crash ledger: {}: {} unreadable line(s) skipped", quarantine_path_.string(), unreadable);
}

void CrashLedger::quarantine(const crash_report::Note& crash) {
  const std::string& hash = crash.content_hash;
  if (hash.size() != 64 || quarantined_.count(hash)) return;
  // Refused in this run whatever becomes of the file (a full disk must not let the crash loop go on).
  quarantined_[hash] = refusal(crash);
  (void)write_synced(quarantine_path_, crash_report::format_note(crash), O_APPEND);
}

void CrashLedger::settle() {
  if (!taken_) return;  // the notes could not be moved aside: they stay to be read again
  std::error_code ec;
  std::filesystem::remove(taken_path_, ec);
}

}  // namespace taskhost
