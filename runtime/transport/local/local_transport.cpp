#include "transport/local/local_transport.hpp"
#include "transport/task_id.hpp"

#include "common/log.hpp"
#include "common/unix_time.hpp"
#include "tasks/router.hpp"
#include "transport/local/task_view.hpp"
#include "transport/receipt.hpp"

#include <boost/uuid/uuid_generators.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <algorithm>

namespace taskhost::transport::local {
namespace {

std::string new_id() {
  thread_local boost::uuids::random_generator generator;  // not thread-safe: one per thread
  return boost::uuids::to_string(generator());
}

// The label /metrics counts tasks of kinds no plugin serves under. Each made-up kind a client sends
// would otherwise add series that stay until a restart (QA sent a thousand).
constexpr const char* kUnservedKind = "(unserved)";

bool unserved(const v1::TaskCompletion& c) {
  return c.has_error() && c.error().code() == v1::COMPONENT_NOT_FOUND && c.error().kind() == "rejected";
}

}  // namespace

LocalTransport::LocalTransport(LocalOptions options) : options_(std::move(options)), store_(options_.state_dir) {
  if (options_.keep_ended.count() > 0) pruner_ = std::thread([this] { prune_loop(); });
}

LocalTransport::~LocalTransport() {
  stop_starter();
  {
    std::lock_guard lock(prune_mu_);
    prune_stop_ = true;
  }
  prune_cv_.notify_all();
  if (pruner_.joinable()) pruner_.join();
  std::vector<std::shared_ptr<Subscription>> open;
  {
    std::lock_guard lock(mu_);
    for (auto& w : watchers_) {
      if (auto s = w.lock()) open.push_back(std::move(s));
    }
    watchers_.clear();
  }
  for (auto& s : open) s->close();
  // Never thrown from here: this also runs while an error (a store that cannot write, say) unwinds the
  // host, and a second exception would abort it instead of letting it exit saying why.
  try {
    store_.flush();
  } catch (const std::exception& e) {
    log::error("state store: the last writes could not be flushed: {}", e.what());
  }
}

LocalTransport::Attachment LocalTransport::attach(tasks::Router& router) {
  router_.store(&router);
  return Attachment(*this);
}
void LocalTransport::detach() {
  stop_starter();  // its work in flight may still call the router
  router_.store(nullptr);
  const std::lock_guard in_flight(prune_run_mu_);  // a prune that loaded the router before is done with it
}
void LocalTransport::set_accepting(bool accepting) { accepting_.store(accepting); }

LocalTransport::Entry& LocalTransport::entry_locked(const std::string& task_id) {
  auto [it, inserted] = tasks_.try_emplace(task_id);
  if (inserted) {
    it->second.status.set_task_id(task_id);
    it->second.status.set_created_unix_ms(unix_ms_now());
  }
  return it->second;
}

void LocalTransport::broadcast_locked(const v1::WatchItem& item, const std::string& task_id) {
  bool expired = false;
  for (auto& w : watchers_) {
    if (auto s = w.lock()) {
      if (s->wants(task_id)) s->push(item);
    } else {
      expired = true;
    }
  }
  if (expired) {
    std::erase_if(watchers_, [](const std::weak_ptr<Subscription>& w) { return w.expired(); });
  }
}

void LocalTransport::remember_history_locked(Entry& entry, const v1::TaskEvent& event) {
  entry.history.push_back(event);
  while (entry.history.size() > options_.history_per_task) entry.history.pop_front();
}

LocalTransport::CompletionSize LocalTransport::size_of(const v1::TaskCompletion& completion) {
  CompletionSize size;
  size.bytes = completion.ByteSizeLong();
  // Sizing the completion sized its output too, and left that in the output's cached size.
  size.output_bytes = completion.has_output() ? static_cast<size_t>(completion.output().GetCachedSize()) : 0;
  return size;
}

void LocalTransport::keep_ended_locked(const std::string& task_id, Entry& entry, CompletionSize size) {
  entry.ended_bytes = size.bytes;
  entry.output_bytes = size.output_bytes;
  ended_bytes_ += entry.ended_bytes;
  ended_order_.push_back(task_id);
  evict_locked();
}

void LocalTransport::evict_locked() {
  while (!ended_order_.empty() &&
         (ended_order_.size() > options_.finished_memory || ended_bytes_ > options_.finished_memory_bytes)) {
    auto it = tasks_.find(ended_order_.front());
    if (it != tasks_.end() && it->second.status.has_completion()) erase_ended_locked(it);
    ended_order_.pop_front();
  }
}

void LocalTransport::erase_ended_locked(std::unordered_map<std::string, Entry>::iterator it) {
  ended_bytes_ -= it->second.ended_bytes;
  tasks_.erase(it);
}

// ---- retention ---------------------------------------------------------------------------------------

void LocalTransport::prune_loop() {
  // Often enough that a task outlives its keep_ended by at most a minute (or half of a short keep_ended).
  const auto interval = std::clamp<std::chrono::milliseconds>(
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.keep_ended) / 2, std::chrono::milliseconds(250),
      std::chrono::minutes(1));
  std::unique_lock lock(prune_mu_);
  while (!prune_cv_.wait_for(lock, interval, [&] { return prune_stop_; })) {
    lock.unlock();
    try {
      if (const size_t n = prune_ended(); n > 0) {
        log::info("state store: deleted {} task(s) that ended over {} s ago", n, options_.keep_ended.count());
      }
    } catch (const std::exception& e) {  // a store that cannot write says so in /v1/health; try again later
      log::warn("state store: ended tasks could not be deleted: {}", e.what());
    }
    lock.lock();
  }
}

size_t LocalTransport::prune_ended() {
  const std::lock_guard run(prune_run_mu_);
  constexpr size_t kPerTransaction = 500;  // the writer's other work waits for one such transaction at most
  const int64_t cutoff = unix_ms_now() - static_cast<int64_t>(options_.keep_ended.count()) * 1000;
  size_t total = 0;
  for (;;) {
    std::vector<std::string> ids = store_.ended_before(cutoff, kPerTransaction);
    if (ids.empty()) return total;
    // Forgotten here first, deleted from the store after: until the store lets go of an id, a submit of
    // it is still answered from the store (a duplicate); once it does, nothing else remembers it, so the
    // same id submitted again is a new task (a router that still knew it would refuse to start it).
    {
      std::lock_guard lock(mu_);
      for (const auto& id : ids) {
        if (auto it = tasks_.find(id); it != tasks_.end() && it->second.status.has_completion()) erase_ended_locked(it);
      }
      std::erase_if(ended_order_, [&](const std::string& id) { return !tasks_.count(id); });
    }
    if (tasks::Router* router = router_.load()) router->forget_ended(ids);
    total += store_.delete_ended(ids, cutoff);
    {
      std::lock_guard lock(prune_mu_);
      if (prune_stop_ || ids.size() < kPerTransaction) return total;
    }
  }
}

// ---- client side ------------------------------------------------------------------------------------

SubmitResult LocalTransport::submit(v1::TaskAssignment a) {
  SubmitResult r;
  auto fail = [&](SubmitResult::Result result, v1::ErrorCode code, std::string message) {
    r.result = result;
    r.code = code;
    r.message = std::move(message);
    return r;
  };
  tasks::Router* router = router_.load();
  if (!accepting_.load() || router == nullptr) {
    return fail(SubmitResult::Result::unavailable, v1::RESOURCE_UNAVAILABLE,
                "host is draining: new tasks are not accepted");
  }
  if (a.task_id().empty()) {
    a.set_task_id(new_id());
  } else if (auto why = task_id_problem(a.task_id()); !why.empty()) {
    return fail(SubmitResult::Result::invalid, v1::INVALID_INPUT, "field 'task_id' " + why);
  }
  r.task_id = a.task_id();
  if (!a.has_execute() && !a.has_list_components()) {
    return fail(SubmitResult::Result::invalid, v1::INVALID_INPUT,
                "task '" + a.task_id() + "': set 'execute' (or 'kind') or 'list_components'");
  }
  std::string kind;
  if (a.has_execute()) {
    kind = a.execute().component_id();
    if (kind.empty()) {
      return fail(SubmitResult::Result::invalid, v1::INVALID_INPUT,
                  "task '" + a.task_id() + "': field 'kind' (execute.component_id) is empty");
    }
    // A kind goes into every listing and event of its task: kept as short as an id.
    if (kind.size() > kMaxTaskIdBytes) {
      return fail(SubmitResult::Result::invalid, v1::INVALID_INPUT,
                  "task '" + a.task_id() + "': field 'kind' (execute.component_id) is longer than " +
                      std::to_string(kMaxTaskIdBytes) + " characters");
    }
    if (a.execute().attempt() == 0) a.mutable_execute()->set_attempt(1);
    if (a.heartbeat_interval_secs() == 0) a.set_heartbeat_interval_secs(options_.default_heartbeat_secs);
  }

  const auto rejected_before = [&] {
    // A submission the host refused (no plugin served its kind, say) created no task: its id is free,
    // and the same id submitted again, once a plugin serves it, runs.
    const auto existing = store_.task(a.task_id());
    return existing && !existing->started && existing->completion && existing->completion->has_error() &&
           existing->completion->error().kind() == "rejected";
  };
  bool replaced = false;
  if (!store_.insert_task(a) && !(rejected_before() && (replaced = store_.replace_unstarted_task(a)))) {
    // The same id again is an idempotent resubmit, unless it names another kind: then the caller means
    // another task, and answering with the first one's result would be wrong.
    if (const auto existing = store_.task(a.task_id()); existing && a.has_execute() && existing->kind != kind) {
      return fail(SubmitResult::Result::rejected, v1::INVALID_INPUT,
                  "task '" + a.task_id() + "' already exists as kind '" + existing->kind + "'; not submitted as '" +
                      kind + "'");
    }
    return fail(SubmitResult::Result::duplicate, v1::ERROR_CODE_UNSPECIFIED,
                "task '" + a.task_id() + "' was already submitted");
  }
  {
    std::lock_guard lock(mu_);
    Entry& e = entry_locked(a.task_id());
    if (replaced) e = Entry{};  // the refused submission's memory (its completion) goes with it
    e.status = status_for_new_task(a, unix_ms_now());
    e.heartbeat_interval = std::chrono::seconds(a.heartbeat_interval_secs());
  }
  const tasks::AssignOutcome outcome = router->assign(a);
  {
    std::lock_guard lock(mu_);
    ++counters_.submitted_total[outcome.code == v1::COMPONENT_NOT_FOUND ? kUnservedKind : kind];
  }
  if (outcome.result == tasks::AssignOutcome::Result::rejected) {
    // The router already answered with a failed completion, which on_completion recorded.
    return fail(SubmitResult::Result::rejected, outcome.code, outcome.message);
  }
  return r;
}

v1::DeliveryReceipt LocalTransport::answer_locally(const std::string& task_id, const std::string& message_id) {
  {
    std::lock_guard lock(mu_);
    if (auto it = tasks_.find(task_id); it != tasks_.end()) {
      if (!it->second.status.has_completion()) return {};
      return make_receipt(task_id, message_id, v1::DeliveryReceipt::TASK_ENDED,
                     "task '" + task_id + "' already ended (" + v1::TaskState_Name(it->second.status.state()) + ")");
    }
  }
  const auto stored = store_.task(task_id);
  if (!stored) return make_receipt(task_id, message_id, v1::DeliveryReceipt::UNKNOWN_TASK, "unknown task '" + task_id + "'");
  if (stored->completion) {
    return make_receipt(task_id, message_id, v1::DeliveryReceipt::TASK_ENDED,
                   "task '" + task_id + "' already ended (" + v1::TaskState_Name(stored->state) + ")");
  }
  return {};
}

v1::DeliveryReceipt LocalTransport::send(v1::SteeringMessage m) {
  if (m.message_id().empty()) m.set_message_id(new_id());
  if (auto r = answer_locally(m.task_id(), m.message_id()); r.outcome() != v1::DeliveryReceipt::OUTCOME_UNSPECIFIED) {
    return r;
  }
  tasks::Router* router = router_.load();
  if (router == nullptr) {
    return make_receipt(m.task_id(), m.message_id(), v1::DeliveryReceipt::REJECTED, "host is shutting down");
  }
  const auto duplicate = [&] {
    return make_receipt(m.task_id(), m.message_id(), v1::DeliveryReceipt::REJECTED,
                        "message '" + m.message_id() + "' was already sent");
  };
  {
    // A recovered task waiting for its kind (or starting): the message is recorded and held for its
    // start, under the lock release_held() reads what was held with, so it is delivered once, in order.
    std::lock_guard lock(mu_);
    if (auto it = tasks_.find(m.task_id()); it != tasks_.end() && it->second.waiting != Waiting::no) {
      if (!store_.insert_message(m)) return duplicate();
      v1::DeliveryReceipt r = make_receipt(
          m.task_id(), m.message_id(), v1::DeliveryReceipt::ACCEPTED,
          it->second.waiting == Waiting::starting
              ? "held for the task's start: it is starting, behind the messages held before it"
              : "held for the task's start: no plugin serves kind '" + it->second.status.kind() + "' yet");
      r.set_queued(true);
      return r;
    }
  }
  if (!store_.insert_message(m)) return duplicate();
  v1::DeliveryReceipt r = router->deliver(m, options_.delivery_timeout);
  // A queued message has no outcome yet: it comes with on_delivery at the start, and until then a
  // restart delivers the message again.
  if (!r.queued()) store_.record_message_outcome(m.task_id(), m.message_id(), r);
  std::lock_guard lock(mu_);
  const auto it = tasks_.find(m.task_id());
  ++counters_.deliveries_total[{it == tasks_.end() ? std::string() : it->second.status.kind(),
                                v1::DeliveryReceipt::Outcome_Name(r.outcome())}];
  return r;
}

v1::DeliveryReceipt LocalTransport::cancel(const v1::CancelRequest& request) {
  if (auto r = answer_locally(request.task_id(), {}); r.outcome() != v1::DeliveryReceipt::OUTCOME_UNSPECIFIED) {
    return r;
  }
  tasks::Router* router = router_.load();
  if (router == nullptr) return make_receipt(request.task_id(), {}, v1::DeliveryReceipt::REJECTED, "host is shutting down");
  store_.record_cancel_request(request.task_id());
  std::optional<StoredTask> waited;  // a recovered task waiting for its kind: it ends here
  {
    std::lock_guard lock(mu_);
    if (auto it = tasks_.find(request.task_id()); it != tasks_.end() && it->second.waiting != Waiting::no) {
      Entry& e = it->second;
      auto w = waiting_.find(e.status.kind());
      auto r = w == waiting_.end() ? std::vector<Restart>::iterator{}
                                   : std::find_if(w->second.begin(), w->second.end(), [&](const Restart& x) {
                                       return x.assignment.task_id() == request.task_id();
                                     });
      if (w == waiting_.end() || r == w->second.end()) {
        // kind_served() is assigning it right now: it sends the cancel once the router has the task.
        e.cancel_while_starting = true;
        return make_receipt(request.task_id(), {}, v1::DeliveryReceipt::ACCEPTED, "cancel requested; the task is starting");
      }
      w->second.erase(r);
      if (w->second.empty()) waiting_.erase(w);
      e.waiting = Waiting::no;
      waited.emplace();
      waited->task_id = request.task_id();
      waited->kind = e.status.kind();
      waited->attempt = e.status.attempt();
      waited->worker_id = e.status.worker_id();
    }
  }
  if (waited) {
    end_locally(*waited, v1::CANCELED, v1::CANCELLED,
                "task '" + waited->task_id + "' was canceled while it waited for a plugin that serves kind '" +
                    waited->kind + "'",
                "");
    return make_receipt(request.task_id(), {}, v1::DeliveryReceipt::ACCEPTED, "canceled");
  }
  v1::DeliveryReceipt r = router->cancel(request, options_.delivery_timeout);
  std::lock_guard lock(mu_);
  if (const auto it = tasks_.find(request.task_id()); it != tasks_.end()) ++counters_.cancels_total[it->second.status.kind()];
  return r;
}

void LocalTransport::fill_from_router(v1::TaskStatus& status) const {
  tasks::Router* router = router_.load();
  if (router == nullptr || status.has_completion()) return;
  if (const auto snap = router->snapshot(status.task_id())) {
    if (snap->generation != 0) status.set_generation(snap->generation);
    if (!snap->plugin_version.empty()) status.set_plugin_version(snap->plugin_version);
    // Waiting for a slot: which limit holds it now (the router works it out at each look).
    if (status.state() == v1::PENDING && snap->state == v1::PENDING && !snap->detail.empty()) {
      status.set_detail(snap->detail);
    }
  }
}

std::optional<v1::TaskStatus> LocalTransport::status(const std::string& task_id) {
  std::optional<v1::TaskStatus> s;
  {
    std::lock_guard lock(mu_);
    if (auto it = tasks_.find(task_id); it != tasks_.end()) s = it->second.status;
  }
  if (!s) {
    if (const auto stored = store_.task(task_id)) s = status_from_stored(*stored);
  }
  if (s) fill_from_router(*s);
  return s;
}

namespace {

// A listing leaves out outputs larger than this: a page of up to 1000 tasks would otherwise carry every
// one of them (the table clips them anyway). `status ID` answers with the whole output.
constexpr size_t kListedOutputBytes = 16 * 1024;

void leave_out_large_output(v1::TaskStatus& s, size_t output_bytes) {
  if (output_bytes <= kListedOutputBytes) return;
  s.mutable_completion()->clear_output();
  s.set_output_omitted_bytes(output_bytes);
}

}  // namespace

std::optional<LocalTransport::TaskPage> LocalTransport::list_page(const std::string& after, size_t limit) {
  // One row more than asked says whether another page follows, without a count query.
  auto rows = store_.page(after, limit + 1);
  if (!rows) return std::nullopt;
  TaskPage page;
  page.more = rows->size() > limit;
  if (page.more) rows->resize(limit);
  {
    std::lock_guard lock(mu_);
    for (const auto& row : *rows) {
      v1::TaskStatus& out = *page.tasks.add_tasks();
      if (const auto it = tasks_.find(row.task_id); it == tasks_.end()) {
        out = status_from_stored(row);
        if (out.has_completion() && out.completion().has_output()) {
          leave_out_large_output(out, out.completion().output().ByteSizeLong());
        }
      } else if (it->second.output_bytes <= kListedOutputBytes) {
        out = it->second.status;
      } else {
        // Copied without the output, which is set aside (a pointer swap, not a copy) and put back.
        v1::TaskCompletion& c = *it->second.status.mutable_completion();
        std::unique_ptr<google::protobuf::Value> output(c.release_output());
        out = it->second.status;
        c.set_allocated_output(output.release());
        out.set_output_omitted_bytes(it->second.output_bytes);
      }
    }
  }
  for (auto& s : *page.tasks.mutable_tasks()) fill_from_router(s);
  return page;
}

std::shared_ptr<Subscription> LocalTransport::watch(const std::string& task_id, std::function<void()> notify) {
  auto sub = std::make_shared<Subscription>(task_id, options_.watch_capacity, options_.watch_capacity_bytes, std::move(notify));
  if (task_id.empty()) {
    std::lock_guard lock(mu_);
    watchers_.push_back(sub);
    return sub;
  }
  auto push_event = [&](const v1::TaskEvent& e) {
    v1::WatchItem item;
    *item.mutable_event() = e;
    sub->push(item);
  };
  // A running task replays from memory; an ended one from the store (its in-memory history was dropped
  // when it ended). The store is read without the lock (it is I/O; flushed first so the task's last
  // writes are in), and read again if the task ended between that check and taking the lock.
  std::optional<StoredTask> stored;
  std::vector<v1::TaskEvent> stored_events;
  bool read_store = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      const auto it = tasks_.find(task_id);
      const bool live = it != tasks_.end() && !it->second.status.has_completion();
      if (live || read_store) {
        // Replay and registration under one lock: no live event is missed or seen twice.
        if (live) {
          for (const auto& e : it->second.history) push_event(e);
        } else {
          for (const auto& e : stored_events) push_event(e);
          const v1::TaskCompletion* completion = nullptr;
          const v1::Progress* progress = nullptr;
          if (it != tasks_.end()) {
            completion = &it->second.status.completion();
            if (it->second.status.has_progress()) progress = &it->second.status.progress();
          } else if (stored) {
            if (stored->completion) completion = &*stored->completion;
            if (stored->progress) progress = &*stored->progress;
          }
          if (progress) {
            // Progress is kept as the latest value, not as events: replay that one, without a seq, as
            // it stood at the end (its own time is not kept; without one, watch printed 00:00:00.000).
            v1::TaskEvent e;
            e.set_task_id(task_id);
            e.set_attempt(completion ? completion->attempt() : 0);
            e.set_kind(completion ? completion->kind() : std::string());
            e.set_unix_ms(completion ? completion->unix_ms() : stored ? stored->updated_ms : 0);
            *e.mutable_progress() = *progress;
            push_event(e);
          }
          if (completion) {
            v1::WatchItem item;
            *item.mutable_completion() = *completion;
            sub->push(item);
          }
        }
        watchers_.push_back(sub);
        return sub;
      }
    }
    store_.flush();
    stored = store_.task(task_id);
    if (stored) stored_events = store_.events(task_id, options_.history_per_task);
    read_store = true;
  }
}

TransportMetrics LocalTransport::metrics() const {
  TransportMetrics m;
  const auto now = Clock::now();
  {
    std::lock_guard lock(mu_);
    m = counters_;
    for (const auto& [id, e] : tasks_) {
      const auto& kind = e.status.kind();
      ++m.tasks[{e.status.has_completion() && unserved(e.status.completion()) ? kUnservedKind : kind, e.status.state()}];
      if (e.status.state() == v1::RUNNING && e.heartbeat_interval.count() > 0 &&
          e.last_beat != Clock::time_point{}) {
        const double overdue =
            std::chrono::duration<double>(now - e.last_beat - e.heartbeat_interval).count();
        double& lag = m.heartbeat_lag_seconds[kind];
        lag = std::max(lag, std::max(0.0, overdue));
      }
    }
    m.watchers = static_cast<uint64_t>(
        std::count_if(watchers_.begin(), watchers_.end(), [](const auto& w) { return !w.expired(); }));
  }
  m.store_commits = store_.commits();
  m.store_failed_writes = store_.write_health().failed_writes;
  return m;
}

// ---- TaskOutbox -------------------------------------------------------------------------------------

void LocalTransport::on_event(const v1::TaskEvent& event) {
  std::lock_guard lock(mu_);
  Entry& e = entry_locked(event.task_id());
  if (e.status.has_completion()) return;  // nothing changes an ended task
  e.last_seq = std::max(e.last_seq, event.seq());
  apply_event(e.status, event);
  if (event.has_state() && event.state().state() == v1::RUNNING && e.started_attempt != event.attempt()) {
    e.started_attempt = event.attempt();
    e.last_beat = Clock::now();
    ++counters_.starts_total[e.status.kind()];
  }
  if (!event.has_output()) {
    remember_history_locked(e, event);
    store_.record_event(event);  // queued; enqueued under the lock so the store sees per-task order
  }
  v1::WatchItem item;
  *item.mutable_event() = event;
  broadcast_locked(item, event.task_id());
}

void LocalTransport::on_heartbeat(const v1::Heartbeat& heartbeat) {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(heartbeat.task_id());
  if (it == tasks_.end()) return;
  it->second.last_beat = Clock::now();
  ++counters_.heartbeats_total[it->second.status.kind()];
}

void LocalTransport::on_completion(const v1::TaskCompletion& completion) {
  // What it will hold in memory, measured before the lock: a walk over the whole output.
  const CompletionSize size = size_of(completion);
  std::lock_guard lock(mu_);
  Entry& e = entry_locked(completion.task_id());
  if (!apply_completion(e.status, completion)) {
    log::warn("task '{}': a second completion ({}) was dropped: the first one wins", completion.task_id(),
              v1::TaskState_Name(completion.state()));
    return;
  }
  ++counters_.completed_total[{unserved(completion) ? kUnservedKind : e.status.kind(), completion.state()}];
  e.history = {};  // watchers of an ended task replay from the store: memory holds only live histories
  store_.record_completion(completion);
  v1::WatchItem item;
  *item.mutable_completion() = completion;
  broadcast_locked(item, completion.task_id());
  keep_ended_locked(completion.task_id(), e, size);  // last: it may evict this very entry
}

void LocalTransport::on_checkpoint(const std::string& task_id, uint32_t attempt, std::string_view bytes) {
  std::lock_guard lock(mu_);  // same lock as events: the store sees checkpoint and completion in order
  store_.record_checkpoint(task_id, attempt, std::string(bytes));
}

void LocalTransport::on_delivery(const v1::DeliveryReceipt& receipt) {
  store_.record_message_outcome(receipt.task_id(), receipt.message_id(), receipt);
}

}  // namespace taskhost::transport::local
