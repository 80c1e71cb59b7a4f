// The local transport's SQLite store on its own: what is committed before a call returns, what survives
// reopening, first-completion-wins, the attempt fence, and group commit under concurrent writers.
#include "transport/local/store.hpp"

#include <doctest/doctest.h>

#include <csignal>

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using taskhost::transport::local::Store;
using taskhost::transport::local::StoreError;
namespace v1 = taskhost::v1;

namespace {

struct TempDir {
  TempDir() {
    path = fs::temp_directory_path() / ("taskhost-store-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

v1::TaskAssignment assignment(const std::string& id, const std::string& kind = "hello.greet") {
  v1::TaskAssignment a;
  a.set_task_id(id);
  a.mutable_execute()->set_component_id(kind);
  a.mutable_execute()->set_attempt(1);
  (*a.mutable_execute()->mutable_input()->mutable_struct_value()->mutable_fields())["name"].set_string_value("Ada");
  return a;
}

v1::TaskEvent state_event(const std::string& id, uint32_t attempt, v1::TaskState s, const std::string& detail = "") {
  v1::TaskEvent e;
  e.set_task_id(id);
  e.set_attempt(attempt);
  e.mutable_state()->set_state(s);
  e.mutable_state()->set_detail(detail);
  return e;
}

v1::TaskCompletion completion(const std::string& id, v1::TaskState s, const std::string& text) {
  v1::TaskCompletion c;
  c.set_task_id(id);
  c.set_attempt(1);
  c.set_state(s);
  if (s == v1::SUCCEEDED) c.mutable_output()->set_string_value(text);
  else c.mutable_error()->set_message(text);
  return c;
}

v1::SteeringMessage message(const std::string& task_id, const std::string& id, const std::string& text) {
  v1::SteeringMessage m;
  m.set_task_id(task_id);
  m.set_message_id(id);
  m.add_parts()->set_text(text);
  return m;
}

// Reads a row count with a separate, plain sqlite3 connection: proves data is in the file, not in memory.
int64_t count_rows(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  const int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

}  // namespace

TEST_CASE("an accepted task is in the database file when insert_task returns") {
  TempDir dir;
  Store store(dir.path);
  CHECK(store.insert_task(assignment("t1")));
  // Another connection sees it without any flush: the submit was committed before the call returned.
  CHECK(count_rows(store.file(), "SELECT count(*) FROM tasks WHERE task_id = 't1'") == 1);
  CHECK_FALSE(store.insert_task(assignment("t1")));  // the same id again is a duplicate
  CHECK(count_rows(store.file(), "SELECT count(*) FROM tasks") == 1);
}

TEST_CASE("state survives closing and reopening the store") {
  TempDir dir;
  {
    Store store(dir.path);
    REQUIRE(store.insert_task(assignment("a")));
    REQUIRE(store.insert_task(assignment("b", "interactive.count")));
    REQUIRE(store.insert_task(assignment("c")));
    store.record_event(state_event("b", 1, v1::RUNNING, "started"));
    store.record_checkpoint("b", 1, std::string("\x01\x02\x00\x03", 4));
    v1::TaskEvent progress;
    progress.set_task_id("b");
    progress.set_attempt(1);
    progress.mutable_progress()->set_current(2);
    progress.mutable_progress()->set_total(5);
    store.record_event(progress);
    store.record_completion(completion("c", v1::SUCCEEDED, "done"));
    // No flush: the destructor must commit what is queued.
  }
  Store store(dir.path);
  const auto open = store.unfinished();
  REQUIRE(open.size() == 2);
  CHECK(open[0].task_id == "a");  // acceptance order
  CHECK_FALSE(open[0].started);
  CHECK(open[1].task_id == "b");
  CHECK(open[1].kind == "interactive.count");
  CHECK(open[1].started);
  CHECK(open[1].state == v1::RUNNING);
  CHECK(open[1].checkpoint == std::string("\x01\x02\x00\x03", 4));
  REQUIRE(open[1].progress);
  CHECK(open[1].progress->current() == 2);
  CHECK(open[1].assignment.execute().input().struct_value().fields().at("name").string_value() == "Ada");

  const auto c = store.task("c");
  REQUIRE(c);
  REQUIRE(c->completion);
  CHECK(c->state == v1::SUCCEEDED);
  CHECK(c->completion->output().string_value() == "done");
  CHECK_FALSE(store.task("nope"));
}

TEST_CASE("a task's crash count is durable and grows by one per recorded crash") {
  TempDir dir;
  {
    Store store(dir.path);
    CHECK_FALSE(store.crashes("t1"));
    CHECK(store.record_crash("t1", SIGSEGV) == 1);
    CHECK(store.record_crash("t1", SIGABRT) == 2);
    CHECK(store.record_crash("t2", SIGBUS) == 1);
  }
  Store store(dir.path);
  const auto t1 = store.crashes("t1");
  REQUIRE(t1);
  CHECK(t1->count == 2);
  CHECK(t1->last_signal == SIGABRT);
  CHECK(store.crashes("t2")->count == 1);
  CHECK_FALSE(store.crashes("t3"));
}

TEST_CASE("the first completion wins") {
  TempDir dir;
  Store store(dir.path);
  REQUIRE(store.insert_task(assignment("t")));
  store.record_completion(completion("t", v1::FAILED, "first"));
  store.record_completion(completion("t", v1::SUCCEEDED, "second"));
  store.record_event(state_event("t", 1, v1::RUNNING));  // a late event cannot reopen it either
  store.flush();
  const auto t = store.task("t");
  REQUIRE(t);
  REQUIRE(t->completion);
  CHECK(t->completion->error().message() == "first");
  CHECK(t->state == v1::FAILED);
}

TEST_CASE("recent_ended reads the newest ended tasks only as far as their bytes fit, oldest first") {
  // A restart keeps this many ended tasks in memory. It used to read the last 10,000 rows whole, inputs
  // and outputs included, and trim by bytes afterwards: QA's host started at 177 MB under a 1 MB budget.
  TempDir dir;
  Store store(dir.path);
  const std::string big(100'000, 'x');
  for (int i = 0; i < 6; ++i) {
    const std::string id = "t" + std::to_string(i);
    REQUIRE(store.insert_task(assignment(id)));
    if (i != 4) store.record_completion(completion(id, v1::SUCCEEDED, big));  // t4 still runs
  }
  store.flush();
  auto ids = [](const std::vector<taskhost::transport::local::StoredTask>& tasks) {
    std::vector<std::string> out;
    for (const auto& t : tasks) out.push_back(t.task_id);
    return out;
  };
  CHECK(ids(store.recent_ended(10, 1u << 30)) == std::vector<std::string>{"t0", "t1", "t2", "t3", "t5"});
  CHECK(ids(store.recent_ended(3, 1u << 30)) == std::vector<std::string>{"t2", "t3", "t5"});
  CHECK(ids(store.recent_ended(10, 250'000)) == std::vector<std::string>{"t3", "t5"});  // two of ~100 KB fit
  CHECK(ids(store.recent_ended(10, 1)) == std::vector<std::string>{"t5"});  // at least the newest
}

TEST_CASE("writes from a superseded attempt are dropped") {
  TempDir dir;
  Store store(dir.path);
  REQUIRE(store.insert_task(assignment("t")));
  store.record_attempt("t", 2);
  store.record_event(state_event("t", 2, v1::RUNNING, "attempt 2"));
  store.record_event(state_event("t", 1, v1::WAITING_INPUT, "zombie"));
  store.record_checkpoint("t", 1, "old");
  store.flush();
  const auto t = store.task("t");
  REQUIRE(t);
  CHECK(t->attempt == 2);
  CHECK(t->state == v1::RUNNING);
  CHECK(t->detail == "attempt 2");
  CHECK(t->checkpoint.empty());
}

TEST_CASE("durable events exclude output deltas; input requests set the pending request") {
  TempDir dir;
  Store store(dir.path);
  REQUIRE(store.insert_task(assignment("t")));
  v1::TaskEvent out;
  out.set_task_id("t");
  out.set_attempt(1);
  out.mutable_output()->set_stream("stdout");
  out.mutable_output()->set_delta("ephemeral");
  store.record_event(out);
  v1::TaskEvent ask;
  ask.set_task_id("t");
  ask.set_attempt(1);
  ask.mutable_input_request()->set_request_id("confirm");
  ask.mutable_input_request()->set_prompt("go on?");
  store.record_event(ask);
  store.record_event(state_event("t", 1, v1::WAITING_INPUT, "asked"));
  store.flush();
  const auto events = store.events("t", 100);
  REQUIRE(events.size() == 2);
  CHECK(events[0].has_input_request());
  CHECK(events[1].has_state());
  auto t = store.task("t");
  CHECK(t->pending_request_id == "confirm");
  CHECK(t->pending_prompt == "go on?");
  store.record_event(state_event("t", 1, v1::RUNNING, "answered"));
  store.flush();
  t = store.task("t");
  CHECK(t->pending_request_id.empty());
}

TEST_CASE("messages are recorded before delivery, once per message id, with their outcome") {
  TempDir dir;
  Store store(dir.path);
  REQUIRE(store.insert_task(assignment("t")));
  const v1::SteeringMessage m = message("t", "m1", "faster");
  REQUIRE(store.insert_message(m));
  CHECK(count_rows(store.file(), "SELECT count(*) FROM messages WHERE message_id = 'm1'") == 1);
  CHECK_FALSE(store.insert_message(m));
  auto msgs = store.messages("t");
  REQUIRE(msgs.size() == 1);
  CHECK_FALSE(msgs[0].answered);
  CHECK(msgs[0].message.parts(0).text() == "faster");
  v1::DeliveryReceipt r;
  r.set_outcome(v1::DeliveryReceipt::ACCEPTED);
  store.record_message_outcome("t", "m1", r);
  store.flush();
  msgs = store.messages("t");
  CHECK(msgs[0].answered);
}

TEST_CASE("message ids are per task: another task may use the same id, and outcomes land on their own task") {
  TempDir dir;
  Store store(dir.path);
  REQUIRE(store.insert_task(assignment("a")));
  REQUIRE(store.insert_task(assignment("b")));
  REQUIRE(store.insert_message(message("a", "m1", "for a")));
  CHECK(store.insert_message(message("b", "m1", "for b")));         // the same id on another task
  CHECK_FALSE(store.insert_message(message("b", "m1", "for b")));   // again on the same task: a duplicate
  v1::DeliveryReceipt r;
  r.set_outcome(v1::DeliveryReceipt::ACCEPTED);
  store.record_message_outcome("b", "m1", r);
  store.flush();
  const auto a = store.messages("a");
  const auto b = store.messages("b");
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);
  CHECK(a[0].message.parts(0).text() == "for a");
  CHECK(b[0].message.parts(0).text() == "for b");
  CHECK_FALSE(a[0].answered);
  CHECK(b[0].answered);
}

TEST_CASE("a schema 1 store is migrated at open: its messages keep their order and outcomes, ids become per task") {
  TempDir dir;
  fs::path file;
  {
    Store store(dir.path);
    file = store.file();
    REQUIRE(store.insert_task(assignment("a")));
    REQUIRE(store.insert_task(assignment("b")));
    for (const char* id : {"m1", "m2"}) REQUIRE(store.insert_message(message("a", id, id)));
    v1::DeliveryReceipt r;
    r.set_outcome(v1::DeliveryReceipt::ACCEPTED);
    store.record_message_outcome("a", "m1", r);
  }
  {
    // Back to the file an older taskhost made: schema 1's messages table (message ids unique across the
    // store) and its version.
    sqlite3* h = nullptr;
    REQUIRE(sqlite3_open_v2(file.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    const char* sql = R"sql(
      BEGIN;
      CREATE TABLE messages_old(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        task_id TEXT NOT NULL,
        body BLOB NOT NULL,
        outcome INTEGER,
        detail TEXT NOT NULL DEFAULT '',
        created_ms INTEGER NOT NULL);
      INSERT INTO messages_old SELECT id, message_id, task_id, body, outcome, detail, created_ms FROM messages;
      DROP TABLE messages;
      ALTER TABLE messages_old RENAME TO messages;
      CREATE INDEX messages_by_task ON messages(task_id, id);
      UPDATE meta SET value = '1' WHERE key = 'schema_version';
      COMMIT;)sql";
    char* err = nullptr;
    REQUIRE_MESSAGE(sqlite3_exec(h, sql, nullptr, nullptr, &err) == SQLITE_OK, (err ? err : ""));
    sqlite3_close(h);
  }
  REQUIRE(count_rows(file, "SELECT count(*) FROM meta WHERE key = 'schema_version' AND value = '1'") == 1);
  Store store(dir.path);
  CHECK(count_rows(file, "SELECT count(*) FROM meta WHERE key = 'schema_version' AND value = '2'") == 1);
  CHECK(count_rows(file, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_schema_1'") == 0);
  const auto a = store.messages("a");
  REQUIRE(a.size() == 2);
  CHECK(a[0].message.message_id() == "m1");
  CHECK(a[0].answered);
  CHECK(a[1].message.message_id() == "m2");
  CHECK_FALSE(a[1].answered);
  CHECK(store.insert_message(message("b", "m1", "for b")));  // refused under schema 1: "m1" was a's
  CHECK_FALSE(store.insert_message(message("a", "m1", "again")));
  REQUIRE(store.insert_message(message("a", "m3", "m3")));  // new rows come after the copied ones
  const auto again = store.messages("a");
  REQUIRE(again.size() == 3);
  CHECK(again[2].message.message_id() == "m3");
}

TEST_CASE("a store from a newer taskhost is refused, naming the file and both versions") {
  TempDir dir;
  fs::path file;
  {
    Store store(dir.path);
    file = store.file();
  }
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(file.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h, "UPDATE meta SET value = '99' WHERE key = 'schema_version'", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  sqlite3_close(h);
  try {
    Store store(dir.path);
    FAIL("a store of schema 99 opened");
  } catch (const StoreError& e) {
    const std::string what = e.what();
    CHECK(what.find(file.string()) != std::string::npos);
    CHECK(what.find("schema version 99, this taskhost uses 2") != std::string::npos);
  }
}

TEST_CASE("ended tasks past the retention are deleted whole; running ones and their messages stay") {
  TempDir dir;
  Store store(dir.path);
  for (const char* id : {"old-done", "old-failed", "running"}) REQUIRE(store.insert_task(assignment(id)));
  v1::SteeringMessage m;
  m.set_message_id("m-old");
  m.set_task_id("old-done");
  REQUIRE(store.insert_message(m));
  m.set_message_id("m-running");
  m.set_task_id("running");
  REQUIRE(store.insert_message(m));
  store.record_event(state_event("old-done", 1, v1::RUNNING));
  store.record_event(state_event("running", 1, v1::RUNNING));
  CHECK(store.record_crash("old-failed", SIGSEGV) == 1);
  store.record_completion(completion("old-done", v1::SUCCEEDED, "out"));
  store.record_completion(completion("old-failed", v1::FAILED, "boom"));
  store.flush();

  const int64_t later = std::numeric_limits<int64_t>::max();  // "every ended task is old enough"
  CHECK(store.ended_before(0, 10).empty());  // nothing ended before the epoch
  auto ended = store.ended_before(later, 10);
  std::sort(ended.begin(), ended.end());
  CHECK(ended == std::vector<std::string>{"old-done", "old-failed"});
  CHECK(store.ended_before(later, 1).size() == 1);

  // Nor one that ended after the cutoff (a new task that took a freed id meanwhile).
  CHECK(store.delete_ended({"old-done"}, 0) == 0);
  REQUIRE(store.task("old-done"));
  // "running" is not deleted even when named: only ended tasks are.
  CHECK(store.delete_ended({"old-done", "old-failed", "running", "never-was"}, later) == 2);
  CHECK_FALSE(store.task("old-done"));
  CHECK_FALSE(store.task("old-failed"));
  CHECK_FALSE(store.crashes("old-failed"));
  CHECK(count_rows(store.file(), "SELECT count(*) FROM events WHERE task_id LIKE 'old-%'") == 0);
  CHECK(count_rows(store.file(), "SELECT count(*) FROM messages WHERE task_id LIKE 'old-%'") == 0);
  REQUIRE(store.task("running"));
  CHECK(store.messages("running").size() == 1);
  CHECK(store.events("running", 10).size() == 1);

  // A client paging with --after a task deleted since goes on from where that task was.
  REQUIRE(store.insert_task(assignment("after-old")));
  const auto page = store.page("old-failed", 10);
  REQUIRE(page);
  std::vector<std::string> ids;
  for (const auto& t : *page) ids.push_back(t.task_id);
  CHECK(ids == std::vector<std::string>{"running", "after-old"});
  CHECK_FALSE(store.page("never-was", 10));

  // Both ids, the task's and its message's, are free again.
  CHECK(store.insert_task(assignment("old-done")));
  m.set_message_id("m-old");
  m.set_task_id("old-done");
  CHECK(store.insert_message(m));
}

TEST_CASE("a cancel request is durable and marks the task") {
  TempDir dir;
  Store store(dir.path);
  REQUIRE(store.insert_task(assignment("t")));
  store.record_cancel_request("t");
  CHECK(count_rows(store.file(), "SELECT cancel_requested FROM tasks WHERE task_id = 't'") == 1);
}

TEST_CASE("pages visit every task once in the order accepted; an unknown cursor is refused") {
  TempDir dir;
  Store store(dir.path);
  const std::vector<std::string> ids = {"z", "a", "m", "b", "y"};  // accept order, not id order
  for (const auto& id : ids) REQUIRE(store.insert_task(assignment(id)));
  std::vector<std::string> seen;
  std::string after;
  for (int pages = 0; pages < 10; ++pages) {
    const auto page = store.page(after, 2);
    REQUIRE(page.has_value());
    for (const auto& t : *page) seen.push_back(t.task_id);
    if (page->size() < 2) break;
    after = page->back().task_id;
    REQUIRE(store.insert_task(assignment("new-" + std::to_string(pages))));  // appends; earlier pages stay put
  }
  CHECK(seen == std::vector<std::string>{"z", "a", "m", "b", "y", "new-0", "new-1", "new-2", "new-3"});
  CHECK_FALSE(store.page("ghost", 2).has_value());
  CHECK(store.page("new-3", 5)->empty());
}

TEST_CASE("a refused task submitted again keeps its place: paging past it skips nothing") {
  // QA: it was deleted and inserted anew, at the end, so "--after p2" found nothing after it and every
  // task accepted after its first submission was never listed.
  TempDir dir;
  Store store(dir.path);
  for (const char* id : {"p1", "p2", "p3", "p4"}) REQUIRE(store.insert_task(assignment(id)));
  store.record_completion(completion("p2", v1::FAILED, "no plugin serves kind"));  // refused, never started
  store.flush();
  REQUIRE(store.replace_unstarted_task(assignment("p2")));
  const auto first = store.page("", 2);
  REQUIRE(first);
  REQUIRE(first->size() == 2);
  CHECK(first->back().task_id == "p2");
  const auto rest = store.page("p2", 10);
  REQUIRE(rest);
  std::vector<std::string> ids;
  for (const auto& t : *rest) ids.push_back(t.task_id);
  CHECK(ids == std::vector<std::string>{"p3", "p4"});
  CHECK_FALSE(store.task("p2")->completion.has_value());  // replaced: the refusal is gone
}

TEST_CASE("a damaged database is refused at open, naming the file and what to do") {
  TempDir dir;
  fs::path file;
  {
    Store store(dir.path);
    file = store.file();
    // Enough rows for the tasks table to span many pages past the header page.
    for (int i = 0; i < 300; ++i) {
      auto a = assignment("t" + std::to_string(i));
      (*a.mutable_execute()->mutable_input()->mutable_struct_value()->mutable_fields())["pad"].set_string_value(
          std::string(400, 'x'));
      REQUIRE(store.insert_task(a));
    }
  }
  REQUIRE(fs::file_size(file) > 16 * 4096);
  {
    // Garbage over one page in the middle of the file (not its header): the file still opens as a database.
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(file) / 2 / 4096 * 4096));
    const std::string junk(4096, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  try {
    Store store(dir.path);
    FAIL("a damaged store opened");
  } catch (const StoreError& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find(file.string()) != std::string::npos);
    CHECK(what.find("is damaged") != std::string::npos);
    CHECK(what.find(".recover") != std::string::npos);
  }
}

namespace {

// A copy of a store as an unclean stop leaves it: taken while the store is open, so the latest commits
// are only in taskhost.db-wal (a clean close checkpoints the log into the file and deletes it).
fs::path crash_copy(const fs::path& from, const fs::path& to, int tasks) {
  Store store(from);
  for (int i = 0; i < tasks; ++i) {
    auto a = assignment("w" + std::to_string(i));
    (*a.mutable_execute()->mutable_input()->mutable_struct_value()->mutable_fields())["pad"].set_string_value(
        std::string(300, 'x'));
    REQUIRE(store.insert_task(a));
  }
  store.flush();
  fs::create_directories(to);
  fs::copy_file(store.file(), to / "taskhost.db");
  fs::copy_file(store.file().string() + "-wal", to / "taskhost.db-wal");
  REQUIRE(fs::file_size(to / "taskhost.db-wal") > 64 * 4096);  // every commit since open is in the log
  return to / "taskhost.db-wal";
}

void overwrite(const fs::path& file, uintmax_t at, size_t n) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  const std::string junk(n, 'U');
  f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
}

std::string open_error(const fs::path& dir) {
  try {
    Store store(dir);
  } catch (const StoreError& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("a store whose write-ahead log is damaged is refused, the log kept; a torn last write is not damage") {
  TempDir dir;
  const fs::path wal = crash_copy(dir.path / "live", dir.path / "copy", 200);

  SUBCASE("intact: every committed task is there") {
    Store store(dir.path / "copy");
    CHECK(store.task("w199"));
  }
  SUBCASE("a torn tail (the last frame cut short) is what a crash leaves: opened, the committed tasks there") {
    fs::resize_file(wal, fs::file_size(wal) - 1000);
    Store store(dir.path / "copy");
    CHECK(store.task("w150"));
  }
  SUBCASE("garbage in the middle, before later commits: refused, naming the log, the log left as it was") {
    overwrite(wal, fs::file_size(wal) / 2, 8192);
    const auto before = fs::file_size(wal);
    const std::string what = open_error(dir.path / "copy");
    INFO(what);
    CHECK(what.find("taskhost.db-wal is damaged at frame") != std::string::npos);
    CHECK(what.find("committed writes would be lost") != std::string::npos);
    CHECK(fs::file_size(wal) == before);
  }
  SUBCASE("a damaged header: refused") {
    overwrite(wal, 0, 28);
    const std::string what = open_error(dir.path / "copy");
    INFO(what);
    CHECK(what.find("does not start with a write-ahead log header") != std::string::npos);
  }
  SUBCASE("a log cut inside its header: refused") {
    fs::resize_file(wal, 20);
    CHECK(open_error(dir.path / "copy").find("shorter than a write-ahead log's header") != std::string::npos);
  }
}

TEST_CASE("a database file that SQLite cannot open as one gets the same advice") {
  TempDir dir;
  fs::path file;
  {
    Store store(dir.path);
    file = store.file();
    for (int i = 0; i < 50; ++i) REQUIRE(store.insert_task(assignment("t" + std::to_string(i))));
  }
  SUBCASE("random bytes") {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << std::string(8192, '\x5a');
  }
  SUBCASE("page 1 overwritten") {
    overwrite(file, 100, 3000);
  }
  const std::string what = open_error(dir.path);
  INFO(what);
  CHECK(what.find(file.string() + " is damaged") != std::string::npos);
  CHECK(what.find(".recover") != std::string::npos);
  CHECK(what.find("PRAGMA") == std::string::npos);  // the host's own statement is no help to an operator
}

TEST_CASE("a store file emptied to nothing is refused, naming the file, and left as it was") {
  TempDir dir;
  fs::path file;
  {
    Store store(dir.path);
    file = store.file();
    CHECK(fs::file_size(file) > 0);  // made whole before it is opened: a store's file is never empty
    REQUIRE(store.insert_task(assignment("accepted-before")));
  }
  REQUIRE_FALSE(fs::exists(file.string() + "-wal"));  // closed cleanly: everything is in the file
  fs::resize_file(file, 0);  // as `> taskhost.db`, or a copy that ran out of disk
  const std::string what = open_error(dir.path);
  INFO(what);
  CHECK(what.find(file.string() + " is empty (0 bytes)") != std::string::npos);
  CHECK(what.find("Restore it from a copy") != std::string::npos);
  CHECK(fs::file_size(file) == 0);
  // Moved aside, as the error says: a new store starts.
  fs::rename(file, file.string() + ".emptied");
  Store fresh(dir.path);
  CHECK_FALSE(fresh.task("accepted-before"));
  CHECK(fs::file_size(fresh.file()) > 0);
}

TEST_CASE("a state directory that cannot be created is an error naming it") {
  TempDir dir;
  const fs::path file = dir.path / "a-file";
  { std::ofstream(file) << "x"; }
  try {
    Store store(file / "state");
    FAIL("expected StoreError");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find((file / "state").string()) != std::string::npos);
  }
}

TEST_CASE("concurrent writers are group-committed and nothing is lost") {
  TempDir dir;
  Store store(dir.path);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  std::vector<std::thread> threads;
  std::atomic<int> inserted{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (store.insert_task(assignment(id))) ++inserted;
        store.record_event(state_event(id, 1, v1::RUNNING));
        store.record_completion(completion(id, v1::SUCCEEDED, id));
      }
    });
  }
  for (auto& th : threads) th.join();
  store.flush();
  CHECK(inserted.load() == kThreads * kPerThread);
  CHECK(count_rows(store.file(), "SELECT count(*) FROM tasks WHERE completion IS NOT NULL") == kThreads * kPerThread);
  CHECK(store.unfinished().empty());
  // Writers share transactions: fewer commits than writes (3 per task).
  CHECK(store.commits() < static_cast<uint64_t>(3 * kThreads * kPerThread));
}
