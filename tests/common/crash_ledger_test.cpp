// The crash ledger on real files in a state directory: which of the last run's notes quarantine a plugin
// content, which are handed on as task crashes, and that nothing is lost when the notes cannot be moved.
#include "host/crash_ledger.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace taskhost;
using What = crash_report::Note::What;

namespace {

struct StateDir {
  fs::path path = fs::temp_directory_path() / ("taskhost-ledger-" + std::to_string(::getpid()));
  StateDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~StateDir() { fs::remove_all(path); }
  void notes(const std::string& text) const { std::ofstream(path / "crash-notes", std::ios::app) << text; }
};

crash_report::Note load_note(What what, const std::string& file, char hash_char, int signal = 0) {
  crash_report::Note n;
  n.what = what;
  n.signal = signal;
  n.file = file;
  n.content_hash = std::string(64, hash_char);
  return n;
}

std::string note(const crash_report::Note& n) { return crash_report::format_note(n); }

}  // namespace

TEST_CASE("a load begun and never ended quarantines its content, unless the run stopped cleanly after it") {
  StateDir dir;
  crash_report::Note task;
  task.what = What::task;
  task.signal = SIGSEGV;
  task.task_id = "t1";
  task.kind = "k";
  dir.notes(note(load_note(What::load_begin, "ok.so", 'a')) + note(load_note(What::load_end, "ok.so", 'a')) +
            note(load_note(What::load_begin, "hung.so", 'b')) + note(load_note(What::clean_stop, "", 'c')) +
            note(load_note(What::load_begin, "crashed.so", 'd')) +
            note(load_note(What::load, "crashed.so", 'd', SIGSEGV)) + note(task) +
            note(load_note(What::load_begin, "exited.so", 'e')));
  {
    CrashLedger ledger(dir.path);
    CHECK(ledger.quarantined().size() == 2);
    CHECK(ledger.quarantined().count(std::string(64, 'd')) == 1);
    CHECK(ledger.quarantined().count(std::string(64, 'e')) == 1);  // exit(), or ld.so giving up: no signal
    CHECK(ledger.quarantined().at(std::string(64, 'e')).find("(exit())") != std::string::npos);
    REQUIRE(ledger.task_crashes().size() == 1);
    CHECK(ledger.task_crashes()[0].task_id == "t1");
    CHECK(fs::exists(dir.path / "crash-notes.taken"));
    ledger.settle();
    CHECK_FALSE(fs::exists(dir.path / "crash-notes.taken"));
  }
  CrashLedger again(dir.path);  // the quarantine is kept; the notes were counted once
  CHECK(again.quarantined().size() == 2);
  CHECK(again.task_crashes().empty());
}

TEST_CASE("notes that cannot be moved aside are still acted on, and kept to be read again") {
  StateDir dir;
  fs::create_directories(dir.path / "crash-notes.taken.tmp");  // stands for a full disk: the move fails
  dir.notes(note(load_note(What::load, "crashed.so", 'f', SIGABRT)));
  {
    CrashLedger ledger(dir.path);
    CHECK(ledger.quarantined().count(std::string(64, 'f')) == 1);
    ledger.settle();
  }
  std::ifstream in(dir.path / "crash-notes");
  std::string kept((std::istreambuf_iterator<char>(in)), {});
  CHECK(kept.find("crash v1 6 load") != std::string::npos);
}

TEST_CASE("a crash in a plugin's own code outside any task's call quarantines its content, and says so") {
  StateDir dir;
  dir.notes(note(load_note(What::load_begin, "threads.so", 'a')) + note(load_note(What::load_end, "threads.so", 'a')) +
            note(load_note(What::code, "threads.so", 'a', SIGABRT)));
  {
    CrashLedger ledger(dir.path);
    REQUIRE(ledger.quarantined().count(std::string(64, 'a')) == 1);
    CHECK(ledger.quarantined().at(std::string(64, 'a')).find("in its own code outside any task's call (SIGABRT)") !=
          std::string::npos);
    CHECK(ledger.task_crashes().empty());
    ledger.settle();
  }
  CrashLedger again(dir.path);  // read back from plugin-quarantine, with the same words
  REQUIRE(again.quarantined().count(std::string(64, 'a')) == 1);
  CHECK(again.quarantined().at(std::string(64, 'a')).find("in its own code outside any task's call (SIGABRT)") !=
        std::string::npos);
}
