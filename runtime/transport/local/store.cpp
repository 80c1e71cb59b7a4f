#include "transport/local/store.hpp"

#include "common/failpoint.hpp"
#include "common/log.hpp"
#include "common/unix_time.hpp"
#include "transport/local/sqlite.hpp"
#include "transport/local/wal_check.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <system_error>

namespace taskhost::transport::local {
namespace {

// 2: a steering message's id is unique per task (UNIQUE(task_id, message_id)), not across the store.
constexpr int kSchemaVersion = 2;
constexpr size_t kMaxBatch = 2048;  // one transaction never grows without bound under a flood

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  assignment BLOB NOT NULL,
  attempt INTEGER NOT NULL,
  state INTEGER NOT NULL,
  detail TEXT NOT NULL DEFAULT '',
  started INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  checkpoint BLOB,
  progress BLOB,
  pending_request_id TEXT NOT NULL DEFAULT '',
  pending_prompt TEXT NOT NULL DEFAULT '',
  worker_id TEXT NOT NULL DEFAULT '',
  completion BLOB,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks(seq) WHERE completion IS NULL;
CREATE INDEX IF NOT EXISTS tasks_ended ON tasks(updated_ms) WHERE completion IS NOT NULL;
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_task ON events(task_id, id);
CREATE TABLE IF NOT EXISTS messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  body BLOB NOT NULL,
  outcome INTEGER,
  detail TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  UNIQUE(task_id, message_id));
CREATE INDEX IF NOT EXISTS messages_by_task ON messages(task_id, id);
CREATE TABLE IF NOT EXISTS crashes(
  task_id TEXT PRIMARY KEY,
  count INTEGER NOT NULL,
  last_signal INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL);
)sql";

constexpr const char* kTaskColumns =
    "assignment, task_id, kind, attempt, state, detail, started, cancel_requested, checkpoint, progress, "
    "pending_request_id, pending_prompt, worker_id, completion, created_ms, updated_ms";

std::string serialize(const google::protobuf::MessageLite& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

bool is_active_state(v1::TaskState s) { return s == v1::RUNNING || s == v1::WAITING_INPUT; }

StoredTask read_task(const Statement& st) {
  StoredTask t;
  t.assignment.ParseFromString(st.column_blob(0));
  t.task_id = st.column_text(1);
  t.kind = st.column_text(2);
  t.attempt = static_cast<uint32_t>(st.column_int(3));
  t.state = static_cast<v1::TaskState>(st.column_int(4));
  t.detail = st.column_text(5);
  t.started = st.column_int(6) != 0;
  t.cancel_requested = st.column_int(7) != 0;
  t.checkpoint = st.column_blob(8);
  if (!st.column_is_null(9)) {
    v1::Progress p;
    p.ParseFromString(st.column_blob(9));
    t.progress = p;
  }
  t.pending_request_id = st.column_text(10);
  t.pending_prompt = st.column_text(11);
  t.worker_id = st.column_text(12);
  if (!st.column_is_null(13)) {
    v1::TaskCompletion c;
    c.ParseFromString(st.column_blob(13));
    t.completion = c;
  }
  t.created_ms = st.column_int(14);
  t.updated_ms = st.column_int(15);
  return t;
}

// A damaged file found now is one clear error at start; found later, it would be a write failing at some
// task's record, or a read returning garbage to a client. quick_check reads every page (O(size): the
// store stays small because ended tasks are deleted after keep_ended) without the index cross-checks of
// a full integrity_check.
// A damaged database file, found by quick_check or by SQLite opening it: what to do about it.
StoreError damaged(const std::filesystem::path& file, const std::string& problems) {
  return StoreError(fmt::format("state store {} is damaged ({}): move it (with its -wal and -shm files) aside to "
                                "start with an empty store, or try to salvage it with `sqlite3 {} .recover`",
                                file.string(), problems, file.string()));
}

void check_integrity(Database& db, const std::filesystem::path& file) {
  std::string problems;
  try {
    auto check = db.prepare("PRAGMA quick_check(3)");
    while (check.step()) {
      const std::string line = check.column_text(0);
      if (line == "ok") return;
      problems += problems.empty() ? line : "; " + line;
    }
  } catch (const SqliteError& e) {  // damage that stops the check itself (a page that is not a b-tree page)
    problems = e.what();
  }
  throw damaged(file, problems);
}

// Makes a rename in `dir` durable: the new name is on disk once the directory itself is synced.
void sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw std::system_error(err, std::generic_category(), "syncing directory " + dir.string());
  }
  ::close(fd);
}

// Schema 1 made a message id unique across the whole store, so an id one task had used was refused for
// every other task until the first was deleted. SQLite cannot change a table's constraints in place: the
// table is rebuilt under the new schema and its rows copied, ids and outcomes included, in one
// transaction with the version bump (a crash leaves either store whole).
void migrate_from_1(Database& db) {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec("ALTER TABLE messages RENAME TO messages_schema_1; DROP INDEX IF EXISTS messages_by_task;");
    db.exec(kSchema);  // makes the new messages table and its index; the other tables exist
    db.exec(
        "INSERT INTO messages(id, message_id, task_id, body, outcome, detail, created_ms) "
        "SELECT id, message_id, task_id, body, outcome, detail, created_ms FROM messages_schema_1 ORDER BY id; "
        "DROP TABLE messages_schema_1;");
    db.exec(fmt::format("UPDATE meta SET value = '{}' WHERE key = 'schema_version'", kSchemaVersion));
    db.exec("COMMIT");
  } catch (...) {
    db.exec("ROLLBACK");
    throw;
  }
}

// A new store is made whole under a temporary name, schema and version included, and renamed into place
// (the directory synced after): so an existing taskhost.db is never empty. SQLite takes an empty file for
// a new database, and a file truncated to nothing (a full disk's failed copy, a restore gone wrong, an
// operator's `> taskhost.db`) would start a host that had forgotten every task it accepted. It is
// refused instead (Store::Store). Rollback-journal mode here: the commit is in the file itself when the
// connection closes, with no log beside it to lose in the rename; the store switches to WAL when it opens.
void create_store_file(const std::filesystem::path& file) {
  const std::filesystem::path fresh = file.string() + ".new";
  std::error_code ignored;
  for (const char* leftover : {"", "-journal"}) {  // from a creation interrupted earlier
    std::filesystem::remove(fresh.string() + leftover, ignored);
  }
  {
    Database db(fresh, /*create=*/true);
    db.exec("PRAGMA synchronous=FULL;");
    db.exec("BEGIN");
    db.exec(kSchema);
    db.exec(fmt::format("INSERT INTO meta(key, value) VALUES('schema_version', '{}')", kSchemaVersion));
    db.exec("COMMIT");
  }
  std::filesystem::rename(fresh, file);
  sync_directory(file.parent_path());
}

}  // namespace

// Prepared once, used only on the writer thread.
struct Store::Writes {
  explicit Writes(Database& db)
      : begin(db.prepare("BEGIN IMMEDIATE")),
        commit(db.prepare("COMMIT")),
        rollback(db.prepare("ROLLBACK")),
        insert_task(db.prepare(
            "INSERT OR IGNORE INTO tasks(task_id, kind, assignment, attempt, state, created_ms, updated_ms) "
            "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)")),
        insert_message(db.prepare(
            "INSERT OR IGNORE INTO messages(message_id, task_id, body, created_ms) VALUES(?1, ?2, ?3, ?4)")),
        cancel_request(db.prepare(
            "UPDATE tasks SET cancel_requested = 1, updated_ms = ?2 WHERE task_id = ?1 AND completion IS NULL")),
        state(db.prepare(
            "UPDATE tasks SET state = ?2, detail = ?3, attempt = max(attempt, ?4), worker_id = ?5, "
            "started = (started OR ?6), "
            "pending_request_id = CASE WHEN ?2 = 3 THEN pending_request_id ELSE '' END, "
            "pending_prompt = CASE WHEN ?2 = 3 THEN pending_prompt ELSE '' END, updated_ms = ?7 "
            "WHERE task_id = ?1 AND completion IS NULL AND attempt <= ?4")),
        progress(db.prepare(
            "UPDATE tasks SET progress = ?2, started = 1, updated_ms = ?3 "
            "WHERE task_id = ?1 AND completion IS NULL AND attempt <= ?4")),
        input_request(db.prepare(
            "UPDATE tasks SET pending_request_id = ?2, pending_prompt = ?3, started = 1, updated_ms = ?4 "
            "WHERE task_id = ?1 AND completion IS NULL AND attempt <= ?5")),
        event(db.prepare("INSERT INTO events(task_id, attempt, body) VALUES(?1, ?2, ?3)")),
        checkpoint(db.prepare(
            "UPDATE tasks SET checkpoint = ?2, updated_ms = ?3 "
            "WHERE task_id = ?1 AND completion IS NULL AND attempt <= ?4")),
        completion(db.prepare(
            "UPDATE tasks SET completion = ?2, state = ?3, attempt = max(attempt, ?4), "
            "pending_request_id = '', pending_prompt = '', updated_ms = ?5 "
            "WHERE task_id = ?1 AND completion IS NULL")),
        outcome(db.prepare("UPDATE messages SET outcome = ?3, detail = ?4 WHERE task_id = ?1 AND message_id = ?2")),
        attempt(db.prepare(
            "UPDATE tasks SET attempt = max(attempt, ?2), updated_ms = ?3 WHERE task_id = ?1")),
        forget_unstarted(db.prepare(
            "DELETE FROM tasks WHERE task_id = ?1 AND started = 0 AND completion IS NOT NULL RETURNING seq")),
        forget_events(db.prepare("DELETE FROM events WHERE task_id = ?1")),
        set_seq(db.prepare("UPDATE tasks SET seq = ?2 WHERE task_id = ?1")),
        delete_ended(db.prepare(
            "DELETE FROM tasks WHERE task_id = ?1 AND completion IS NOT NULL AND updated_ms < ?2 RETURNING seq")),
        forget_messages(db.prepare("DELETE FROM messages WHERE task_id = ?1")),
        forget_crashes(db.prepare("DELETE FROM crashes WHERE task_id = ?1")),
        crash(db.prepare(
            "INSERT INTO crashes(task_id, count, last_signal, updated_ms) VALUES(?1, 1, ?2, ?3) "
            "ON CONFLICT(task_id) DO UPDATE SET count = count + 1, last_signal = ?2, updated_ms = ?3 "
            "RETURNING count")) {}

  Statement begin, commit, rollback;
  Statement insert_task, insert_message, cancel_request;
  Statement state, progress, input_request, event, checkpoint, completion, outcome, attempt;
  Statement forget_unstarted, forget_events, set_seq, delete_ended, forget_messages, forget_crashes, crash;
};

Store::Store(const std::filesystem::path& dir) : file_(dir / "taskhost.db") {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw StoreError(fmt::format("cannot create state directory {}: {}", dir.string(), ec.message()));
  lock_ = std::make_unique<taskhost::StateLock>(dir);
  if (!std::filesystem::exists(file_, ec)) {
    try {
      create_store_file(file_);
    } catch (const std::exception& e) {
      throw StoreError(fmt::format("cannot create state store {}: {}", file_.string(), e.what()));
    }
  } else if (std::filesystem::file_size(file_, ec) == 0 && !ec) {
    throw StoreError(fmt::format("state store {} is empty (0 bytes), but a store is never empty once made: it "
                                 "was truncated or replaced, and the tasks it held are not in it. Restore it "
                                 "from a copy, or move it (with its -wal and -shm files) aside to start with an "
                                 "empty store",
                                 file_.string()));
  }
  // Before SQLite opens it: it would replay the log up to the damage and reset it (wal_check.hpp).
  if (const std::string damage = wal_damage(file_); !damage.empty()) {
    throw StoreError(fmt::format("state store {}: {}: committed writes would be lost. Keep both files: move them "
                                 "aside to start with an empty store, or try to salvage a copy of both with "
                                 "`sqlite3 {} .recover`",
                                 file_.string(), damage, file_.string()));
  }
  try {
    writer_db_ = std::make_unique<Database>(file_, /*create=*/true);
    // WAL: readers never block the writer; FULL: a commit survives power loss, not just a crash.
    writer_db_->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    check_integrity(*writer_db_, file_);
    writer_db_->exec(kSchema);
    auto version = writer_db_->prepare("SELECT value FROM meta WHERE key = 'schema_version'");
    if (version.step()) {
      const auto found = version.column_text(0);
      version.reset();
      if (found == "1") {
        migrate_from_1(*writer_db_);
      } else if (found != std::to_string(kSchemaVersion)) {
        throw StoreError(fmt::format("{} has schema version {}, this taskhost uses {}", file_.string(), found,
                                     kSchemaVersion));
      }
    } else {
      writer_db_->exec(fmt::format("INSERT INTO meta(key, value) VALUES('schema_version', '{}')", kSchemaVersion));
    }
    version.reset();
    writes_ = std::make_unique<Writes>(*writer_db_);
    reader_db_ = std::make_unique<Database>(file_, /*create=*/false, /*read_only=*/true);
  } catch (const SqliteError& e) {
    const std::string what = e.what();
    // Damage that stops SQLite before quick_check can run (a cut or overwritten file): the same advice.
    if (what.find("malformed") != std::string::npos || what.find("not a database") != std::string::npos) {
      throw damaged(file_, what.substr(0, what.find(" (in: ")));
    }
    throw StoreError(fmt::format("state store {}: {}", file_.string(), what));
  }
  writer_ = std::thread([this] { writer_loop(); });
}

Store::~Store() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  writes_.reset();  // statements before their connection
}

void Store::enqueue(std::function<void()> write) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Op{std::move(write), nullptr});
  }
  wake_.notify_one();
}

void Store::run_sync(std::function<void()> write) {
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_) throw StoreError("state store is closing");
    queue_.push_back(Op{std::move(write), done});
  }
  wake_.notify_one();
  future.get();  // rethrows the write's or the commit's error
}

void Store::writer_loop() {
  std::deque<Op> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued was written
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    commit_batch(batch);
    batch.clear();
  }
}

void Store::commit_batch(std::deque<Op>& batch) {
  std::vector<std::string> errors(batch.size());  // per write: empty, or why it was lost
  bool committed = false;
  try {
    writes_->begin.run();
    for (size_t i = 0; i < batch.size(); ++i) {
      try {
        batch[i].write();
      } catch (const std::exception& e) {
        errors[i] = fmt::format("state store write failed: {}", e.what());
      }
    }
    writes_->commit.run();
    committed = true;
  } catch (const std::exception& e) {
    const std::string why = fmt::format("state store commit failed: {}", e.what());
    for (auto& error : errors) error = why;  // the whole transaction is gone
    try {
      writes_->rollback.run();
    } catch (const std::exception&) {
      // The transaction is already gone (SQLite rolls back on some errors by itself).
    }
  }
  {
    std::lock_guard lock(mu_);
    if (committed) ++commits_;
    const auto lost = std::find_if(errors.rbegin(), errors.rend(), [](const std::string& e) { return !e.empty(); });
    health_.failing = lost != errors.rend();
    if (health_.failing) {
      health_.failed_writes += static_cast<uint64_t>(
          std::count_if(errors.begin(), errors.end(), [](const std::string& e) { return !e.empty(); }));
      health_.last_error = *lost;
    }
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (errors[i].empty()) {
      if (batch[i].done) batch[i].done->set_value();
    } else if (batch[i].done) {
      batch[i].done->set_exception(std::make_exception_ptr(StoreError(errors[i])));
    } else {
      log::error("state store: a queued write was lost: {}", errors[i]);
    }
  }
}

// ---- writes -----------------------------------------------------------------------------------------

bool Store::insert_task(const v1::TaskAssignment& assignment) {
  bool inserted = false;
  run_sync([&, body = serialize(assignment)] { inserted = insert_task_now(assignment, body); });
  return inserted;
}

bool Store::replace_unstarted_task(const v1::TaskAssignment& assignment) {
  bool replaced = false;
  run_sync([&, body = serialize(assignment)] {
    Statement& forget = writes_->forget_unstarted;
    const bool forgotten = forget.bind(1, assignment.task_id()).step();
    const int64_t seq = forgotten ? forget.column_int(0) : 0;
    forget.reset();
    if (!forgotten) return;  // started, unfinished or gone meanwhile: not ours to replace
    writes_->forget_events.bind(1, assignment.task_id()).run();
    replaced = insert_task_now(assignment, body);
    // It keeps its place in the list (its seq): a client paging with --after past this id would
    // otherwise find it moved to the end, and skip every task accepted after it the first time.
    if (replaced) writes_->set_seq.bind(1, assignment.task_id()).bind(2, seq).run();
  });
  return replaced;
}

size_t Store::delete_ended(const std::vector<std::string>& task_ids, int64_t ended_before_ms) {
  size_t deleted = 0;
  run_sync([&] {
    deleted = 0;  // (a failed transaction deleted nothing)
    for (const auto& id : task_ids) {
      Statement& del = writes_->delete_ended;
      del.bind(1, id).bind(2, ended_before_ms);
      const bool gone = del.step();
      const int64_t seq = gone ? del.column_int(0) : 0;
      del.reset();
      if (!gone) continue;  // not there, or not ended: kept whole
      ++deleted;
      remember_deleted(id, seq);
      writes_->forget_events.bind(1, id).run();
      writes_->forget_messages.bind(1, id).run();
      writes_->forget_crashes.bind(1, id).run();
    }
  });
  return deleted;
}

bool Store::insert_task_now(const v1::TaskAssignment& assignment, const std::string& body) {
  // A test makes task records fail to write, as on a full disk (tests/api/api_test.cpp).
  if (failpoint("local.store.fail_task_write")) throw StoreError("failpoint local.store.fail_task_write");
  const uint32_t attempt = assignment.has_execute() && assignment.execute().attempt() > 0
                               ? assignment.execute().attempt() : 1;
  writes_->insert_task.bind(1, assignment.task_id())
      .bind(2, assignment.has_execute() ? assignment.execute().component_id() : std::string())
      .bind_blob(3, body)
      .bind(4, int64_t{attempt})
      .bind(5, int64_t{v1::PENDING})
      .bind(6, unix_ms_now())
      .run();
  return writer_db_->changes() == 1;
}

bool Store::insert_message(const v1::SteeringMessage& message) {
  bool inserted = false;
  run_sync([&, body = serialize(message)] {
    writes_->insert_message.bind(1, message.message_id())
        .bind(2, message.task_id())
        .bind_blob(3, body)
        .bind(4, unix_ms_now())
        .run();
    inserted = writer_db_->changes() == 1;
  });
  return inserted;
}

void Store::record_cancel_request(const std::string& task_id) {
  run_sync([&] { writes_->cancel_request.bind(1, task_id).bind(2, unix_ms_now()).run(); });
}

void Store::record_event(const v1::TaskEvent& event) {
  if (event.has_output()) return;  // ephemeral by design
  enqueue([this, event] {
    const int64_t attempt = event.attempt();
    const int64_t at = event.unix_ms() ? event.unix_ms() : unix_ms_now();
    if (event.has_progress()) {
      // Only the latest progress is worth keeping: it replaces the previous one, no event row.
      writes_->progress.bind(1, event.task_id()).bind_blob(2, serialize(event.progress())).bind(3, at)
          .bind(4, attempt).run();
      return;
    }
    if (event.has_state()) {
      const auto s = event.state().state();
      writes_->state.bind(1, event.task_id())
          .bind(2, int64_t{s})
          .bind(3, event.state().detail())
          .bind(4, attempt)
          .bind(5, event.worker_id())
          .bind(6, int64_t{is_active_state(s) ? 1 : 0})
          .bind(7, at)
          .run();
    } else if (event.has_input_request()) {
      writes_->input_request.bind(1, event.task_id())
          .bind(2, event.input_request().request_id())
          .bind(3, event.input_request().prompt())
          .bind(4, at)
          .bind(5, attempt)
          .run();
    }
    writes_->event.bind(1, event.task_id()).bind(2, attempt).bind_blob(3, serialize(event)).run();
  });
}

void Store::record_checkpoint(const std::string& task_id, uint32_t attempt, std::string bytes) {
  enqueue([this, task_id, attempt, bytes = std::move(bytes)] {
    writes_->checkpoint.bind(1, task_id).bind_blob(2, bytes).bind(3, unix_ms_now()).bind(4, int64_t{attempt}).run();
  });
}

void Store::record_completion(const v1::TaskCompletion& completion) {
  enqueue([this, completion] {
    writes_->completion.bind(1, completion.task_id())
        .bind_blob(2, serialize(completion))
        .bind(3, int64_t{completion.state()})
        .bind(4, int64_t{completion.attempt()})
        .bind(5, unix_ms_now())
        .run();
  });
}

void Store::record_message_outcome(const std::string& task_id, const std::string& message_id,
                                   const v1::DeliveryReceipt& receipt) {
  enqueue([this, task_id, message_id, outcome = int64_t{receipt.outcome()}, detail = receipt.detail()] {
    writes_->outcome.bind(1, task_id).bind(2, message_id).bind(3, outcome).bind(4, detail).run();
  });
}

void Store::record_attempt(const std::string& task_id, uint32_t attempt) {
  enqueue([this, task_id, attempt] {
    writes_->attempt.bind(1, task_id).bind(2, int64_t{attempt}).bind(3, unix_ms_now()).run();
  });
}

uint32_t Store::record_crash(const std::string& task_id, int signal) {
  uint32_t count = 0;
  run_sync([&] {
    Statement& st = writes_->crash;
    st.bind(1, task_id).bind(2, int64_t{signal}).bind(3, unix_ms_now());
    if (st.step()) count = static_cast<uint32_t>(st.column_int(0));
    st.reset();  // done with its row before the transaction commits
  });
  return count;
}

template <typename Fn>
auto Store::read(std::string_view sql, Fn&& fn) {
  std::lock_guard lock(read_mu_);
  try {
    auto st = reader_db_->prepare(sql);
    return fn(st);
  } catch (const SqliteError& e) {
    throw StoreError(fmt::format("state store read failed: {}", e.what()));
  }
}

std::optional<TaskCrashes> Store::crashes(const std::string& task_id) {
  return read("SELECT count, last_signal FROM crashes WHERE task_id = ?1",
              [&](Statement& st) -> std::optional<TaskCrashes> {
                st.bind(1, task_id);
                if (!st.step()) return std::nullopt;
                return TaskCrashes{static_cast<uint32_t>(st.column_int(0)), static_cast<int>(st.column_int(1))};
              });
}

void Store::remember_deleted(const std::string& task_id, int64_t seq) {
  std::lock_guard lock(mu_);
  if (deleted_seq_.emplace(task_id, seq).second) deleted_order_.push_back(task_id);
  while (deleted_order_.size() > kDeletedRemembered) {
    deleted_seq_.erase(deleted_order_.front());
    deleted_order_.pop_front();
  }
}

std::vector<std::string> Store::ended_before(int64_t unix_ms, size_t limit) {
  return read("SELECT task_id FROM tasks WHERE completion IS NOT NULL AND updated_ms < ?1 ORDER BY updated_ms LIMIT ?2",
              [&](Statement& st) {
                st.bind(1, unix_ms).bind(2, static_cast<int64_t>(limit));
                std::vector<std::string> out;
                while (st.step()) out.push_back(st.column_text(0));
                return out;
              });
}

void Store::flush() {
  run_sync([] {});
}

uint64_t Store::commits() const {
  std::lock_guard lock(mu_);
  return commits_;
}

Store::WriteHealth Store::write_health() const {
  std::lock_guard lock(mu_);
  return health_;
}

// ---- reads ------------------------------------------------------------------------------------------

std::vector<StoredTask> Store::select_tasks(std::string_view where_order_limit,
                                            const std::function<void(Statement&)>& bind) {
  return read(fmt::format("SELECT {} FROM tasks {}", kTaskColumns, where_order_limit), [&](Statement& st) {
    bind(st);
    std::vector<StoredTask> out;
    while (st.step()) out.push_back(read_task(st));
    return out;
  });
}

std::optional<StoredTask> Store::task(const std::string& task_id) {
  auto rows = select_tasks("WHERE task_id = ?1", [&](Statement& st) { st.bind(1, task_id); });
  if (rows.empty()) return std::nullopt;
  return std::move(rows.front());
}

std::vector<StoredTask> Store::unfinished() {
  return select_tasks("WHERE completion IS NULL ORDER BY seq", [](Statement&) {});
}

std::vector<StoredTask> Store::recent_ended(size_t limit, size_t max_bytes) {
  // length() of a blob comes from the row's header: the blobs themselves are not read here.
  const auto from = read("SELECT seq, length(completion) + length(assignment) FROM tasks WHERE completion IS NOT NULL "
                         "ORDER BY seq DESC LIMIT ?1",
                         [&](Statement& st) -> std::optional<int64_t> {
                           st.bind(1, static_cast<int64_t>(limit));
                           std::optional<int64_t> first;
                           size_t bytes = 0;
                           while (st.step()) {
                             bytes += static_cast<size_t>(st.column_int(1));
                             if (first && bytes > max_bytes) break;
                             first = st.column_int(0);
                           }
                           return first;
                         });
  if (!from) return {};
  return select_tasks("WHERE completion IS NOT NULL AND seq >= ?1 ORDER BY seq",
                      [&](Statement& st) { st.bind(1, *from); });
}

std::optional<std::vector<StoredTask>> Store::page(const std::string& after, size_t limit) {
  int64_t after_seq = 0;
  if (!after.empty()) {
    const auto seq = read("SELECT seq FROM tasks WHERE task_id = ?1", [&](Statement& st) -> std::optional<int64_t> {
      st.bind(1, after);
      if (st.step()) return st.column_int(0);
      // Deleted since the client read its page (retention): the page goes on from where it was.
      std::lock_guard deleted_lock(mu_);
      const auto it = deleted_seq_.find(after);
      if (it == deleted_seq_.end()) return std::nullopt;
      return it->second;
    });
    if (!seq) return std::nullopt;
    after_seq = *seq;
  }
  return select_tasks("WHERE seq > ?1 ORDER BY seq LIMIT ?2", [&](Statement& st) {
    st.bind(1, after_seq);
    st.bind(2, static_cast<int64_t>(limit));
  });
}

std::vector<v1::TaskEvent> Store::events(const std::string& task_id, size_t limit) {
  return read("SELECT body FROM (SELECT id, body FROM events WHERE task_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
              [&](Statement& st) {
                st.bind(1, task_id).bind(2, static_cast<int64_t>(limit));
                std::vector<v1::TaskEvent> out;
                while (st.step()) {
                  v1::TaskEvent e;
                  e.ParseFromString(st.column_blob(0));
                  out.push_back(std::move(e));
                }
                return out;
              });
}

std::vector<StoredMessage> Store::messages(const std::string& task_id) {
  return read("SELECT body, outcome IS NOT NULL FROM messages WHERE task_id = ?1 ORDER BY id", [&](Statement& st) {
    st.bind(1, task_id);
    std::vector<StoredMessage> out;
    while (st.step()) {
      StoredMessage m;
      m.message.ParseFromString(st.column_blob(0));
      m.answered = st.column_int(1) != 0;
      out.push_back(std::move(m));
    }
    return out;
  });
}

}  // namespace taskhost::transport::local
