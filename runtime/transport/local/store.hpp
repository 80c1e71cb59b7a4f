// The local transport's durable state: one SQLite database (WAL, synchronous=FULL) under the state
// directory, holding every accepted task with its assignment, attempt, last state and progress,
// checkpoint, durable events (not output deltas: those are ephemeral), steering messages with their
// outcomes, and its completion, until the transport deletes it a while after it ended (delete_ended).
// Opening checks the file (quick_check): a damaged one is refused at once, naming it.
//
// Writes go through one writer thread that commits whatever has queued up in one transaction (group
// commit), so the router's hot path only enqueues. The three writes a client waits for — a task being
// accepted, a message being recorded, a cancel being requested — return only once their transaction is
// committed: nothing is acknowledged before it is durable. Queued writes keep their order with those.
//
// Thread rule: every method is safe from any thread. Reads use their own connection and see what has
// been committed (call flush() first to include everything queued). Errors throw StoreError.
#pragma once

#include "host/state_lock.hpp"

#include "taskhost/v1/assignment.pb.h"
#include "taskhost/v1/completion.pb.h"
#include "taskhost/v1/events.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace taskhost::transport::local {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Database;
class Statement;

// One task as the store last recorded it.
struct StoredTask {
  v1::TaskAssignment assignment;  // as accepted (its execute.attempt is the first attempt)
  std::string task_id;
  std::string kind;
  uint32_t attempt = 1;           // the latest attempt
  v1::TaskState state = v1::PENDING;
  std::string detail;
  bool started = false;           // the task reached a plugin (any state past pending was recorded)
  bool cancel_requested = false;
  std::string checkpoint;         // latest checkpoint bytes; empty if none
  std::optional<v1::Progress> progress;
  std::string pending_request_id;
  std::string pending_prompt;
  std::string worker_id;
  std::optional<v1::TaskCompletion> completion;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

// How often a task was in a call when its host died of a fatal signal (common/crash_report.hpp).
struct TaskCrashes {
  uint32_t count = 0;
  int last_signal = 0;
};

struct StoredMessage {
  v1::SteeringMessage message;
  bool answered = false;  // a delivery outcome was recorded
};

class Store {
 public:
  // Opens or creates `dir`/taskhost.db and starts the writer thread. Throws StoreError when the
  // directory or database cannot be used (naming the path), another Store (in this process or another)
  // holds the directory (state_lock.hpp), or the schema is from another version.
  explicit Store(const std::filesystem::path& dir);
  // Commits everything queued, then stops the writer.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& file() const { return file_; }

  // ---- durable before return -------------------------------------------------------------------------
  // Records a newly accepted task (state PENDING). False when a task with this id already exists.
  bool insert_task(const v1::TaskAssignment& assignment);
  // Records `assignment` in place of a task of its id that ended without ever starting (the row, its
  // events), as a new task (last in the accepted order). False when that task started, has not ended,
  // or is gone. In one transaction: of two racing replacements one wins.
  bool replace_unstarted_task(const v1::TaskAssignment& assignment);
  // Records an inbound message before delivery is tried. False when its task already has a message of
  // that id (ids are per task: two tasks may each get an "m1").
  bool insert_message(const v1::SteeringMessage& message);
  // Records that a cancel was asked for, so a restart does not resume a task someone canceled.
  void record_cancel_request(const std::string& task_id);
  // Counts one more host crash during a call of the task; returns its count so far.
  uint32_t record_crash(const std::string& task_id, int signal);

  // ---- queued (ordered after every write queued or committed before them) -----------------------------
  // State changes update the task row (and are kept as events), the latest progress replaces the previous
  // one, input requests, artifacts and outbound messages are kept as events, output deltas are ignored.
  void record_event(const v1::TaskEvent& event);
  void record_checkpoint(const std::string& task_id, uint32_t attempt, std::string bytes);
  // The first completion for a task id wins; later ones are ignored.
  void record_completion(const v1::TaskCompletion& completion);
  void record_message_outcome(const std::string& task_id, const std::string& message_id,
                              const v1::DeliveryReceipt& receipt);
  // A new attempt started for the task (a restart re-assigned it).
  void record_attempt(const std::string& task_id, uint32_t attempt);

  // Deletes these tasks, if they ended before `ended_before_ms` (so not a task that took a freed id since
  // ended_before() named it), with their events, messages and crash counts, in one transaction; returns
  // how many were deleted. Their ids (and their messages' ids) are free again.
  size_t delete_ended(const std::vector<std::string>& task_ids, int64_t ended_before_ms);

  // Blocks until everything queued so far is committed.
  void flush();

  // ---- reads -----------------------------------------------------------------------------------------
  std::optional<StoredTask> task(const std::string& task_id);
  // Tasks without a completion, in the order they were accepted.
  std::vector<StoredTask> unfinished();
  // The most recently accepted ended tasks, oldest first: at most `limit` of them, and, newest first, no
  // more than fit in `max_bytes` of completions and assignments (at least one). The sizes are read before
  // the rows, so a store of large tasks is not read whole into memory to keep a few.
  std::vector<StoredTask> recent_ended(size_t limit, size_t max_bytes);
  // A page of every task the store holds, in the order they were accepted: up to `limit` tasks accepted after
  // the task `after` (from the first when empty). The order never changes (new tasks only append), so
  // paging with the last id of each page visits every task once. `after` may be a task deleted since
  // (delete_ended; remembered while this store is open). nullopt when `after` names no task.
  std::optional<std::vector<StoredTask>> page(const std::string& after, size_t limit);
  // The task's durable events, oldest first, at most the last `limit`.
  std::vector<v1::TaskEvent> events(const std::string& task_id, size_t limit);
  // The task's crash count, if it ever crashed its host.
  std::optional<TaskCrashes> crashes(const std::string& task_id);
  // Up to `limit` ids of tasks whose last record (their completion) is older than `unix_ms`, oldest first.
  std::vector<std::string> ended_before(int64_t unix_ms, size_t limit);
  // Messages for the task in arrival order.
  std::vector<StoredMessage> messages(const std::string& task_id);

  // Writes committed since open, for metrics/tests.
  uint64_t commits() const;
  // Writes that failed (a full disk, a read-only or corrupt file), and the latest one's error; `failing`
  // while the latest transaction failed (a commit since clears it). For /v1/health and /metrics: a host
  // that cannot record what it does must say so, not only log it.
  struct WriteHealth {
    uint64_t failed_writes = 0;
    bool failing = false;
    std::string last_error;
  };
  WriteHealth write_health() const;

 private:
  struct Op {
    std::function<void()> write;        // runs on the writer thread inside a transaction
    std::shared_ptr<std::promise<void>> done;  // set for callers that wait; null for queued writes
  };
  void enqueue(std::function<void()> write);
  void run_sync(std::function<void()> write);
  void writer_loop();
  // Writer thread: the INSERT of insert_task (a no-op for an id that exists); true if it inserted.
  bool insert_task_now(const v1::TaskAssignment& assignment, const std::string& body);
  void commit_batch(std::deque<Op>& batch);
  std::vector<StoredTask> select_tasks(std::string_view where_order_limit, const std::function<void(Statement&)>& bind);
  // Runs fn(statement) for `sql` on the reader connection under read_mu_; a SQLite error is a StoreError.
  template <typename Fn>
  auto read(std::string_view sql, Fn&& fn);
  struct Writes;  // the writer's prepared statements

  std::filesystem::path file_;
  std::unique_ptr<taskhost::StateLock> lock_;  // taken before the database is opened
  std::unique_ptr<Database> writer_db_;  // writer thread only
  std::unique_ptr<Writes> writes_;       // writer thread only
  std::unique_ptr<Database> reader_db_;  // under read_mu_
  std::mutex read_mu_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Op> queue_;
  bool stopping_ = false;
  uint64_t commits_ = 0;
  WriteHealth health_;  // under mu_
  // Where deleted tasks were in the accepted order, the latest kDeletedRemembered (under mu_): a client
  // paging with --after the id of a task deleted meanwhile goes on from there instead of failing.
  static constexpr size_t kDeletedRemembered = 100'000;
  void remember_deleted(const std::string& task_id, int64_t seq);
  std::unordered_map<std::string, int64_t> deleted_seq_;
  std::deque<std::string> deleted_order_;
  std::thread writer_;
};

}  // namespace taskhost::transport::local
