// NatsTransport internals shared by nats_transport.cpp (lifecycle, outbox), intake.cpp (taking tasks in),
// ownership.cpp (KV records, conflicts, fencing) and rescue.cpp (dead hosts). Not a public interface.
//
// Locking: `mu` guards `inflight`. Never call the router, the control channel or anything that may call
// back into the outbox while holding `mu`; publishing (AsyncPublisher::publish) under `mu` is fine.
// `intake_mu` is held shared by everything that hands a task to the router and exclusively by drain(),
// so no task is assigned after draining began (the router would refuse it with a failed completion).
// The one exception, claims already sent when draining began (PendingClaims), drain() waits for before
// it drains the router.
#pragma once

#include "transport/nats/async_publisher.hpp"
#include "transport/nats/connection.hpp"
#include "transport/nats/control_channel.hpp"
#include "transport/nats/discovery.hpp"
#include "transport/nats/event_batcher.hpp"
#include "transport/nats/host_liveness.hpp"
#include "transport/nats/msg_reaper.hpp"
#include "transport/nats/names.hpp"
#include "transport/nats/nats_transport.hpp"
#include "transport/nats/puller.hpp"
#include "transport/nats/record_store.hpp"
#include "transport/nats/serial_worker.hpp"
#include "transport/nats/wire.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <ranges>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace taskhost::transport::nats {

// A task this host holds, from the delivery until its completion is stored and its record deleted.
struct Inflight {
  std::string task_id;
  std::string kind;
  // As claimed (intake, rescue): what the record, its ownership and the start count use. The router may
  // run a later attempt of the claim here (a reload's migration, an isolated plugin's next process); its
  // checkpoints are recorded under this one: the record's attempt counts the hosts that claimed the task
  // (max_deliver), and an ownership conflict compares claims, not local restarts.
  uint32_t attempt = 1;
  std::string assignment;  // serialized as first queued (its attempt is the first): what a rescuer re-attaches
  std::string reply;       // ack subject of the delivery held; empty for a task rescued from a dead host
  bool acked = false;
  std::chrono::steady_clock::time_point received{};
  std::chrono::steady_clock::time_point last_progress_ack{};
  int64_t created_unix_ms = 0;

  uint64_t record_rev = 0;     // the revision our next record write expects (0 = none yet)
  bool record_written = false; // our ownership record is stored
  bool record_busy = false;    // a record write or delete is in flight
  bool record_dirty = false;   // write again when the one in flight is answered
  bool record_delete = false;  // the task ended: delete the record when nothing is in flight
  bool record_unwritable = false;  // a write was over the server's max_payload: not tried again
  std::string checkpoint;
  uint64_t control_seq = 0;  // newest control message the plugin has taken (its deliver returned)
  // Steering the router holds for later (its receipt said `queued`: the task had not started, waited for
  // its plugin's next process, or had not asked the question it answers), by sequence: message id, until
  // the router's final outcome (on_delivery). A re-attached attempt starts with the ones its checkpoint's
  // mark lists, id unknown (empty) until the control channel hands them over again.
  std::map<uint64_t, std::string> held_control;
  ControlMark checkpoint_control;  // applied_mark() when `checkpoint` was taken: recorded with it

  // What a checkpoint taken now reflects: every control message the plugin has taken, the held ones
  // excepted (ControlMark).
  ControlMark applied_mark() const { return ControlMark::of(control_seq, held_control | std::views::keys); }
  // A re-attached attempt resumes from a checkpoint with `mark`: what it reflects counts as taken by this
  // attempt too (a checkpoint written before any new message keeps the same mark), and what it held is
  // held again until the control channel hands it over.
  void resume_control(const ControlMark& mark) {
    control_seq = std::max(control_seq, mark.newest());
    for (uint64_t seq : mark.held) held_control.try_emplace(seq);
    checkpoint_control = mark;
  }

  // on_receipt acks a delivery once the host holds it durably (or never can): true once, when that ack is
  // due now (the caller sends it to `reply`).
  bool receipt_ack_due(AckMode mode) {
    if (mode != AckMode::on_receipt || acked || reply.empty()) return false;
    acked = true;
    return true;
  }

  bool completion_sent = false;
  bool finishing = false;      // counted in `finishing`: ended, its delivery still held until stored
  bool completion_stored = false;
  bool fenced = false;         // another host owns the task now: this attempt's writes are dropped
};

// What a task message brought with it.
struct Delivery {
  std::string kind;
  std::string reply;
  std::string data;
  DeliveryInfo info;
  uint64_t client_revision = 0;  // the queued record a client wrote when it submitted the task
  bool rescued = false;          // handed back by a dead host's rescuer: resumed from the record
  // When the task was submitted: the stream's time of the assignment (now, if the server gave none).
  int64_t submitted_unix_ms() const;
};

class NatsTransport::Impl {
 public:
  explicit Impl(NatsOptions options);
  ~Impl();

  // ---- lifecycle and outbox (nats_transport.cpp) ----------------------------------------------
  void start(tasks::Router& router, registry::KindRegistry& registry);
  void drain(std::chrono::milliseconds grace);
  void stop();
  // Waits up to `timeout` for every publish to be answered; gives up sooner once the server has been
  // unreachable for kUnreachableAfter. False when some are still unanswered.
  bool flush_publishes(std::chrono::milliseconds timeout);
  void refresh_kinds();
  void tick();
  void on_completion(const v1::TaskCompletion& completion);
  void on_checkpoint(const std::string& task_id, uint32_t attempt, std::string_view bytes);
  void on_delivery(const v1::DeliveryReceipt& receipt);
  void completion_stored(const v1::TaskCompletion& completion, const PublishResult& result);

  // ---- intake (intake.cpp) ------------------------------------------------------------------------
  // One batch from the puller: first deliveries are admitted together (claim_fresh); redeliveries go
  // to the worker one by one, since each may need a look at the task's record first.
  void on_task_messages(std::vector<Puller::Delivered>& batch);
  struct Fresh {
    v1::TaskAssignment assignment;
    Delivery delivery;
  };
  void claim_fresh(std::vector<Fresh>& batch);
  void claim_redelivered(v1::TaskAssignment assignment, Delivery delivery);
  // First deliveries a client queued with a record (worker thread): each is claimed by compare-and-set
  // on that record before it starts, so one the client canceled meanwhile is let go unstarted. The
  // claims go out together, and the worker thread goes on while they travel (in-progress acks, record
  // writes, other batches): finish_claims takes the batch up when its last answer arrives, or from
  // tick() once kClaimWait passed without it.
  void claim_recorded(std::vector<Fresh> batch);
  struct PendingClaims {
    std::vector<Fresh> batch;
    std::chrono::steady_clock::time_point deadline;
    std::chrono::steady_clock::time_point answers_usable;  // failpoint nats.intake.slow_claim_answers
    std::mutex mu;  // guards left and results (answers arrive on the publisher's thread)
    size_t left = 0;
    std::vector<std::optional<PublishResult>> results;
    bool finished = false;  // worker thread only
    // Every answer is in, and usable by `now`: the batch can be taken up.
    bool answered_by(std::chrono::steady_clock::time_point now) {
      std::lock_guard lock(mu);
      return left == 0 && now >= answers_usable;
    }
  };
  static constexpr std::chrono::seconds kClaimWait{10};
  void finish_claims_if_answered(const std::shared_ptr<PendingClaims>& claims);
  // A batch this host will not start (it drains): out of `inflight`, handed back to JetStream at once.
  void hand_back_unclaimed(const std::vector<Fresh>& batch);
  void finish_claims(const std::shared_ptr<PendingClaims>& claims);
  std::vector<std::shared_ptr<PendingClaims>> pending_claims;  // worker thread only
  // Claim batches sent and not finished yet, counted under intake_mu held shared (as draining is read):
  // drain() waits for them. claims_closed: drain gave up waiting; a late batch is handed back.
  std::mutex claims_mu;
  std::condition_variable claims_done;
  size_t claims_in_flight = 0;
  bool claims_closed = false;  // under intake_mu
  // Lets go of a delivery canceled while queued that never started here: acked, its record removed.
  void let_go_unstarted(const std::string& task_id, uint64_t revision);
  // Ends a delivered task failed without running it (poisoned, or refused as malformed): its one
  // completion is stored, then the delivery acked, and its record (read at `record_rev`; 0: none) deleted.
  void fail_delivery(const v1::TaskAssignment& a, const Delivery& d, uint32_t attempt, v1::ErrorCode code,
                     const std::string& error_kind, const std::string& message, uint64_t record_rev = 0);
  // Ends a task started `starts` times already as failed "poisoned", as attempt `refused` (not started).
  void poisoned(const v1::TaskAssignment& assignment, const Delivery& delivery, uint64_t starts, uint32_t refused,
                uint64_t record_rev);
  // After router.assign: open the task's control, or clean up after a duplicate.
  // `resumed`: the control messages already reflected in the checkpoint the task resumes from (a
  // re-attach; its Inflight has them from resume_control()), none for a fresh start.
  void after_assign(const std::string& task_id, uint32_t attempt, const tasks::AssignOutcome& outcome,
                    int64_t assigned_unix_ns, const std::string& reply, const ControlMark& resumed = {});
  void apply_control(const ControlItem& item);
  void answer_ended(const ControlItem& item);
  void ack(const std::string& reply, const char* kind = "+ACK");
  void nak_later(const std::string& reply);
  void nak_after(const std::string& reply, std::chrono::nanoseconds delay);
  // How long a task handed back after a server error waits before it is delivered again.
  static constexpr std::chrono::milliseconds kTransientBackoff{2000};

  // ---- ownership records (ownership.cpp) -----------------------------------------------------------
  TaskRecord record_of(const Inflight& f) const;
  void write_record_locked(Inflight& f);   // mu held
  void delete_record_locked(Inflight& f);  // mu held
  void record_written(const std::string& task_id, const PublishResult& result);
  void record_deleted(const std::string& task_id);
  void resolve_conflict(const std::string& task_id);
  // What a lost compare-and-set on a task's record means, from the record read after it (`held`, none
  // if it is gone). canceled_while_queued: the client canceled it before any host held it. Otherwise
  // takes_over_locked: this host may hold it (a client's queued record, a tombstone, our own earlier
  // write, a dead or earlier holder), and take_over_locked writes the record again at `revision`; else a
  // live host holds it.
  static bool canceled_while_queued(const std::optional<RecordStore::Task>& held);
  bool takes_over_locked(const std::optional<RecordStore::Task>& held, const Inflight& f) const;
  void take_over_locked(Inflight& f, uint64_t revision);
  // For a host that may have lost the task (resolve_conflict, check_ownership): why this attempt must be
  // dropped, from the record read (`held`) and, when there is none, whether the task's completion is
  // stored (`finished`); empty when the task is still this host's to hold or take over.
  std::string lost_because_locked(const std::optional<RecordStore::Task>& held, bool finished,
                                  const Inflight& f) const;
  // A delivery this host does not run, held by another: acked in on_receipt mode (the holder owns it),
  // handed back for later in on_completion mode (it comes back should the holder die).
  void let_go_copy(const std::string& reply);
  // Drops this host's attempt of a task another host holds or finished; `why` says so ("is held by w1").
  void fence(const std::string& task_id, const std::string& why);
  // A fenced attempt that ended here and whose completion is dropped, its entry gone: the batcher's mark
  // and the task's control go with it.
  void forget_fenced(const std::string& task_id, uint32_t attempt);

  // ---- a host that was presumed dead (ownership.cpp) ---------------------------------------------------
  // Whether this host may publish events, completions and record writes now (any thread; no lock taken):
  // HostLiveness::vouched(), and every time its key was found taken has been answered by
  // check_ownership(). Closed, batches wait in the batcher and record writes stay dirty.
  bool may_write() const;
  // The key was found taken for the `taken`-th time (worker thread): reads each running task's record
  // (and, without one, its completion) and fences the attempts another host took over or finished,
  // then opens may_write() again. A read that fails leaves it to tick() to try again.
  void check_ownership(uint64_t taken);
  std::atomic<uint64_t> ownership_checked{0};  // the times_taken() check_ownership() has answered
  uint64_t ownership_recheck = 0;              // worker thread: a check that failed, for tick()
  uint64_t ownership_check_posted = 0;         // liveness thread: the last times_taken() posted
  // A client canceled the task while it was queued (its record says so): this attempt must not run.
  void drop_canceled_while_queued(const std::string& task_id, uint64_t revision);
  // Ends this host's attempt of a task another party decided: its completion is dropped, the local task
  // is cancelled, and the delivery is acked (or, with `nak_if_on_completion`, handed back later).
  void drop_attempt(const std::string& task_id, const std::string& reason, bool nak_if_on_completion);

  // ---- rescue (rescue.cpp) ----------------------------------------------------------------------------
  // Takes over every record of `dead_worker` (worker thread). While this host holds the lease on it
  // (host_liveness.hpp), no other host will: a rescue cut short (the listing ended early, a take-over
  // failed, this host began draining) is tried again by tick() until every record is handled, then the
  // lease is released; if this host leaves or dies first, the lease falls silent and another host wins it.
  void rescue(const std::string& dead_worker);
  bool rescue_all(const std::string& dead_worker);  // false: some record may be left; try again
  bool rescue_task(TaskRecord record, uint64_t revision);  // false: left alone (this host is draining)
  // Ends a dead host's recorded task failed (WORKER_ERROR, `error_kind`) instead of re-attaching it.
  // A dead host's task of a kind no plugin here serves: back to its kind's queue, for a host that does.
  // Throws NatsError when it cannot be published (the rescue is tried again).
  void hand_back_rescued(TaskRecord rec, uint64_t revision);
  void end_unresumed(const TaskRecord& record, uint64_t revision, const std::string& error_kind,
                     const std::string& message);

  // ---- state ------------------------------------------------------------------------------------------
  NatsOptions options;  // replicas resolved at construction, then read-only
  const Names names;
  std::unique_ptr<Connection> connection;
  std::unique_ptr<Connection> results_connection;  // the publisher's: see the constructor
  MsgReaper reaper;  // task messages, once read; flushed by tick()
  kvStore* kv = nullptr;
  std::unique_ptr<RecordStore> store;
  std::unique_ptr<AsyncPublisher> publisher;
  std::unique_ptr<EventBatcher> batcher;
  std::unique_ptr<HostLiveness> liveness;
  std::unique_ptr<ControlChannel> control;
  std::unique_ptr<DiscoveryResponder> discovery;
  std::unique_ptr<Puller> puller;
  std::unique_ptr<SerialWorker> worker;           // KV reads, claims of redeliveries, rescues, upkeep
  std::unique_ptr<SerialWorker> liveness_thread;  // HostLiveness::tick, nothing else
  std::map<std::string, std::chrono::steady_clock::time_point> rescue_retries;  // dead worker -> when (worker thread)
  tasks::Router* router = nullptr;
  registry::KindRegistry* registry = nullptr;
  std::shared_ptr<std::atomic<bool>> listening = std::make_shared<std::atomic<bool>>(false);

  mutable std::mutex mu;
  std::unordered_map<std::string, Inflight> inflight;
  // Tasks the router has ended whose deliveries this host still holds (completion not yet stored, so
  // not yet acked). They still occupy a slot as far as pulling is concerned.
  size_t finishing_total = 0;
  size_t free_slots(const std::string& kind);  // router's free slots minus `finishing`
  void mark_finishing_locked(Inflight& f);     // mu held

  std::shared_mutex intake_mu;
  bool draining = false;
  bool drained = false;  // drain() ran to its end: stop() hands what is left to the fleet
  std::chrono::steady_clock::time_point pulls_paused_at{};  // when drain() made the last pull request
  bool started = false;
  bool stopped = false;

  std::set<std::string> kinds;  // worker thread only

  std::atomic<uint64_t> handed_to_queue{0};  // dead hosts' tasks of kinds this host does not serve
  std::atomic<uint64_t> received{0}, handed_back{0}, completions{0}, duplicates{0}, reattached{0}, orphaned{0},
      fenced_count{0};
};

}  // namespace taskhost::transport::nats
