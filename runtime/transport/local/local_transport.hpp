// The embedded transport: no external server. The local API hands it assignments, steering and
// cancels; it makes them durable in the Store, feeds the router, and as the router's TaskOutbox records
// what comes back (events, checkpoints, completions) and broadcasts it to watchers.
//
//   API ──submit/send/cancel──▶ LocalTransport ──durable──▶ Store (SQLite)
//                                     │ assign / deliver / cancel
//                                     ▼
//                                   Router ──events/completions (TaskOutbox)──▶ LocalTransport ──▶ Store,
//                                                                                 watchers, status view
//
// Guarantees: a submit returns only after the task is committed; a message is committed before delivery
// is tried; the first completion for a task id wins. On startup recover() re-assigns what the store
// holds unfinished: tasks that never started start fresh; tasks that had started are re-attached with
// attempt + 1 and their last checkpoint (the router ends those whose kind cannot re-attach failed with
// error kind "orphaned"); tasks someone had asked to cancel end canceled. A task whose kind no plugin
// serves at the restart (its file missing, failing to load or still loading) waits, PENDING, until a
// plugin serving the kind is loaded (kind_served): the host accepted it, so a plugin missing for a
// while must not end it. Meanwhile its steering is held for it and a cancel ends it.
//
// Wiring order (cli/serve.cpp): construct; construct the Host with this as its outbox; attach(router);
// the registry's switches to kind_served(); recover(); serve the API; on shutdown stop the API, destroy the Host (the router may still publish
// while it stops), then destroy this. Thread rule: every public method is safe from any thread; the
// blocking ones (submit, send, cancel) wait for a commit and, for send/cancel, for the plugin's answer.
#pragma once

#include "common/crash_report.hpp"
#include "transport/local/store.hpp"
#include "transport/local/subscription.hpp"
#include "transport/outbox.hpp"

#include "taskhost/v1/cancel.pb.h"
#include "taskhost/v1/status.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace taskhost::tasks {
class Router;
}

namespace taskhost::transport::local {

struct LocalOptions {
  std::filesystem::path state_dir = ".taskhost-state";
  uint32_t default_heartbeat_secs = 5;  // for assignments that set none
  size_t finished_memory = 10'000;      // ended tasks kept in memory (older ones are read from the store)
  size_t finished_memory_bytes = 64u << 20;  // and bytes (their completions, outputs included): many large
                                             // outputs must not grow the host without bound
  size_t history_per_task = 256;        // durable events replayed to a new watcher of one task (kept in
                                        // memory while it runs, read from the store once it ended)
  size_t watch_capacity = 10'000;       // items a watcher may fall behind before it is closed
  size_t watch_capacity_bytes = 16u << 20;  // and bytes (serialized items)
  std::chrono::milliseconds delivery_timeout{5'000};  // how long send/cancel wait for the plugin's answer
  // A task that was in a call when the host died of a fatal signal this many times (crash notes, see
  // common/crash_report.hpp) is not started again by recover(): it ends FAILED, error kind
  // "plugin_crash". 0 = no limit (a plugin that crashes on every start keeps the host in a crash loop).
  uint32_t max_plugin_crashes = 2;
  // Ended tasks are deleted (from the store and from memory, with their events and messages) once they
  // have been over for this long, so a long-running host's state stays bounded; their ids may then be
  // used again. 0 = kept for good.
  std::chrono::seconds keep_ended{std::chrono::hours(24 * 7)};
};

struct SubmitResult {
  enum class Result {
    accepted,     // durable and handed to the router
    duplicate,    // a task with this id was accepted before; nothing changed
    invalid,      // malformed: nothing was recorded (code INVALID_INPUT)
    rejected,     // recorded, then refused by the router (e.g. COMPONENT_NOT_FOUND); it ended failed
    unavailable,  // the host is draining; nothing was recorded
  };
  Result result = Result::accepted;
  std::string task_id;
  v1::ErrorCode code = v1::ERROR_CODE_UNSPECIFIED;
  std::string message;
};

struct RecoveryReport {
  size_t restarted = 0;    // never started: assigned again
  size_t reattached = 0;   // had started: assigned again with reattach, attempt + 1
  size_t canceled = 0;     // a cancel had been requested: ended canceled
  size_t redelivered = 0;  // recorded messages that had no delivery outcome: delivered again
  size_t crashed = 0;      // crashed the host max_plugin_crashes times: ended failed, not started
  size_t orphaned = 0;     // had started, and its kind cannot re-attach: the router ends it failed "orphaned"
  size_t waiting = 0;      // no plugin serves its kind now: waits for one (kind_served)
};

// Counters for GET /metrics. Label keys are (kind) or (kind, state/outcome).
struct TransportMetrics {
  std::map<std::pair<std::string, v1::TaskState>, uint64_t> tasks;  // tasks in memory by kind, state
  std::map<std::pair<std::string, v1::TaskState>, uint64_t> completed_total;
  std::map<std::string, uint64_t> submitted_total;
  std::map<std::string, uint64_t> starts_total;      // attempts that reached running (plugin start calls)
  std::map<std::pair<std::string, std::string>, uint64_t> deliveries_total;  // (kind, outcome)
  std::map<std::string, uint64_t> cancels_total;
  std::map<std::string, uint64_t> heartbeats_total;
  std::map<std::string, double> heartbeat_lag_seconds;  // max over running tasks: overdue beyond interval
  uint64_t watchers = 0;
  uint64_t store_commits = 0;
  uint64_t store_failed_writes = 0;
};

class LocalTransport final : public TaskOutbox {
 public:
  // Opens (creating) the store under options.state_dir. Throws StoreError naming the path.
  explicit LocalTransport(LocalOptions options);
  ~LocalTransport() override;  // closes every watcher, then commits what is queued
  LocalTransport(const LocalTransport&) = delete;
  LocalTransport& operator=(const LocalTransport&) = delete;

  // The transport calls `router` (submits, steering, the pruner) while an Attachment lives: declared after
  // the router's owner, it ends first on every path, an error's too.
  class [[nodiscard]] Attachment {
   public:
    explicit Attachment(LocalTransport& t) : transport_(t) {}
    ~Attachment() { transport_.detach(); }
    Attachment(const Attachment&) = delete;
    Attachment& operator=(const Attachment&) = delete;

   private:
    LocalTransport& transport_;
  };
  Attachment attach(tasks::Router& router);
  // From here on nothing in the transport calls the router (it waits for a prune in flight). Idempotent:
  // the Attachment's end, for one that must come earlier.
  void detach();
  RecoveryReport recover();            // once, after attach, before serving clients
  // Counts the last run's crashes during task calls (host/crash_ledger.hpp) against their tasks, durably,
  // before recover() decides which tasks to start again.
  void record_crashes(const std::vector<crash_report::Note>& crashes);
  // A plugin serves `kind` now (wire KindRegistry::on_switch here, before recover()): the recovered tasks
  // waiting for it start, and their held steering is delivered. Any thread; nothing to do when none waits.
  // Returns at once: the work runs on the transport's starter thread (start_waiting), not on the caller,
  // which is the thread scanning the plugins directory; the next scan (a reload, the watcher's) must not
  // wait for deliveries to plugins.
  void kind_served(const std::string& kind);
  void set_accepting(bool accepting);  // false while draining: submits answer `unavailable`
  bool accepting() const { return accepting_.load(); }
  Store::WriteHealth store_health() const { return store_.write_health(); }

  SubmitResult submit(v1::TaskAssignment assignment);
  v1::DeliveryReceipt send(v1::SteeringMessage message);
  v1::DeliveryReceipt cancel(const v1::CancelRequest& request);
  std::optional<v1::TaskStatus> status(const std::string& task_id);
  // One page of every task the store holds, in the order they were accepted (Store::page): `limit` tasks
  // after the task `after` ("" = from the first). `more` says a next page may follow (after the last id).
  // nullopt when `after` names no task. Live tasks show their in-memory state, the others the store's.
  struct TaskPage {
    v1::TaskStatusList tasks;
    bool more = false;
  };
  std::optional<TaskPage> list_page(const std::string& after, size_t limit);

  // Follows one task (replaying its recorded events and, once ended, its last progress and its
  // completion) or every task (live only). The subscription ends when the transport is destroyed; drop it to unsubscribe.
  std::shared_ptr<Subscription> watch(const std::string& task_id, std::function<void()> notify);

  // Deletes the tasks that ended more than keep_ended ago, oldest first; returns how many. The transport
  // does this by itself (every minute, or sooner for a short keep_ended); any thread.
  size_t prune_ended();

  TransportMetrics metrics() const;
  Store& store() { return store_; }

  // ---- TaskOutbox (router threads) ----
  void on_event(const v1::TaskEvent& event) override;
  void on_heartbeat(const v1::Heartbeat& heartbeat) override;
  void on_completion(const v1::TaskCompletion& completion) override;
  void on_checkpoint(const std::string& task_id, uint32_t attempt, std::string_view bytes) override;
  void on_delivery(const v1::DeliveryReceipt& receipt) override;

 private:
  using Clock = std::chrono::steady_clock;
  // A recovered task's next assignment: as it was, or re-attached with attempt + 1 and its checkpoint.
  struct Restart {
    v1::TaskAssignment assignment;
    bool reattach = false;
    std::string checkpoint;
  };
  // Where a recovered task whose kind no plugin served stands (kind_served, send and cancel look).
  enum class Waiting { no, for_kind, starting };
  struct Entry {
    v1::TaskStatus status;
    Waiting waiting = Waiting::no;
    bool cancel_while_starting = false;  // a cancel came while kind_served assigned it: sent after
    std::deque<v1::TaskEvent> history;  // durable events, newest last, bounded; emptied when it ends
    std::chrono::seconds heartbeat_interval{0};
    Clock::time_point last_beat{};      // last heartbeat, or when it started running
    uint32_t started_attempt = 0;
    size_t ended_bytes = 0;             // its completion's size once it ended, counted in ended_bytes_
    size_t output_bytes = 0;            // its output's size once it ended (a listing may leave it out)
    // The highest seq of its events so far, kept across a restart (from its stored events) so that the
    // next run's events continue the count instead of starting again at 1.
    uint64_t last_seq = 0;
  };
  Entry& entry_locked(const std::string& task_id);
  void broadcast_locked(const v1::WatchItem& item, const std::string& task_id);
  void remember_history_locked(Entry& entry, const v1::TaskEvent& event);
  // What an ended task's completion holds: its serialized size, and its output's. One walk over the
  // output; taken before the lock.
  struct CompletionSize {
    size_t bytes = 0;
    size_t output_bytes = 0;
  };
  static CompletionSize size_of(const v1::TaskCompletion& completion);
  // An ended task's entry, holding about `size.bytes`, joins the ones kept in memory; the oldest go while
  // there are more than finished_memory of them or they hold more than finished_memory_bytes.
  void keep_ended_locked(const std::string& task_id, Entry& entry, CompletionSize size);
  void evict_locked();
  void erase_ended_locked(std::unordered_map<std::string, Entry>::iterator it);
  v1::DeliveryReceipt answer_locally(const std::string& task_id, const std::string& message_id);
  void fill_from_router(v1::TaskStatus& status) const;
  void end_locally(const StoredTask& task, v1::TaskState state, v1::ErrorCode code, std::string message,
                   std::string error_kind);
  // A state event for a task no router holds (recovery decided its fate); returns its time.
  int64_t emit_state_locally(const StoredTask& task, v1::TaskState state, std::string detail);
  // Assigns recovered tasks again, their new attempts committed first.
  void assign_recovered(tasks::Router& router, const std::vector<Restart>& restarts);
  // The task's recorded steering that never got a delivery outcome, appended to `out`.
  void append_unanswered(const std::string& task_id, std::vector<v1::SteeringMessage>& out);
  // Delivers those (after their tasks were assigned); returns how many.
  size_t deliver_again(tasks::Router& router, const std::vector<v1::SteeringMessage>& messages);
  // Keeps a recovered task whose kind no plugin serves until one does; says so in its status.
  void wait_for_kind(Restart r, const StoredTask& t);
  // kind_served's work, on the starter thread: assigns the tasks that waited for `kind`, then
  // release_held.
  void start_waiting(const std::string& kind);
  void starter_loop();
  void stop_starter();  // detach() and the destructor: waits for the work in flight, runs no more
  // After kind_served assigned the tasks that waited: delivers the steering held for them, in the
  // order it was sent, then ends their wait (and sends a cancel that came meanwhile).
  // Returns how many messages it delivered.
  size_t release_held(tasks::Router& router, const std::vector<Restart>& started);

  void prune_loop();

  const LocalOptions options_;
  Store store_;
  std::atomic<tasks::Router*> router_{nullptr};
  std::atomic<bool> accepting_{true};

  mutable std::mutex mu_;  // guards everything below; never held while calling the router
  std::unordered_map<std::string, Entry> tasks_;
  std::deque<std::string> ended_order_;  // ended task ids, oldest first, for eviction
  size_t ended_bytes_ = 0;               // the ended tasks' ended_bytes in memory, for eviction
  std::vector<std::weak_ptr<Subscription>> watchers_;
  TransportMetrics counters_;
  std::unordered_map<std::string, std::vector<Restart>> waiting_;  // kind -> recovered tasks waiting for it

  // The starter thread (kind_served): made at the first kind served while tasks wait for it, so a host
  // with nothing waiting never has one. Kinds are handled in the order they were served.
  std::mutex starter_mu_;  // guards the four below
  std::condition_variable starter_cv_;
  std::deque<std::string> served_kinds_;
  bool starter_stop_ = false;
  std::thread starter_;

  std::mutex prune_run_mu_;  // held through each prune_ended(): detach() waits for one in flight
  std::mutex prune_mu_;      // guards prune_stop_
  std::condition_variable prune_cv_;
  bool prune_stop_ = false;
  std::thread pruner_;  // runs prune_loop while keep_ended is set; last member: started once the rest exists
};

}  // namespace taskhost::transport::local
