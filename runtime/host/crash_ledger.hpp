// The host's memory of its own crashes, across runs, in its state directory:
//
//   crash-notes        what the fatal signal handler noted during the last run (common/crash_report.hpp);
//   plugin-quarantine  plugin contents (by SHA-256) that crashed the host in-process while it loaded them,
//                      or in their own code outside any task's call (a thread the plugin started): one
//                      line each, in the notes' own format (the crash's note), kept until an operator
//                      deletes it.
//
// At start the ledger takes over the last run's notes: it moves them aside (crash-notes.taken), opens a
// fresh crash-notes for this run's handler, adds the load and code crashes to plugin-quarantine (synced),
// and hands the task crashes to the transport (the embedded one counts them per task). settle() then deletes the
// taken notes, once whatever was in them is durable elsewhere; notes a run died before settling are read
// again by the next one.
//
// Why by content: the file an operator drops in again after fixing it has another hash and loads; the
// same bytes under another name do not. Isolated (isolation = "process"), a quarantined content loads as
// any file: its crash would only end its own process.
//
// Thread rule: construct, read and settle on one thread, before the host loads plugins.
#pragma once

#include "common/crash_report.hpp"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace taskhost {

class CrashLedger {
 public:
  // Creates `state_dir` if needed. Problems (an unwritable directory, say) are logged, never thrown: a host
  // without a ledger only forgets its crashes.
  explicit CrashLedger(const std::filesystem::path& state_dir);
  ~CrashLedger();
  CrashLedger(const CrashLedger&) = delete;
  CrashLedger& operator=(const CrashLedger&) = delete;

  // For crash_report::install: this run's notes. -1 if the file could not be opened.
  int note_fd() const { return note_fd_; }
  // The last run's crashes during a task's call, oldest first.
  const std::vector<crash_report::Note>& task_crashes() const { return task_crashes_; }
  // Content hash → why it is not loaded in-process (for plugin::IsolationPolicy::refused_in_process).
  const std::map<std::string, std::string>& quarantined() const { return quarantined_; }
  // The last run's notes are now durable where they belong: forget them.
  void settle();

 private:
  void take_notes();
  void read_quarantine();
  void quarantine(const crash_report::Note& crash);

  const std::filesystem::path notes_path_;
  const std::filesystem::path taken_path_;
  const std::filesystem::path quarantine_path_;
  int note_fd_ = -1;
  bool taken_ = false;  // the last run's notes were moved aside (settle() may delete them)
  std::vector<crash_report::Note> task_crashes_;
  std::map<std::string, std::string> quarantined_;
};

}  // namespace taskhost
