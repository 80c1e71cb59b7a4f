#include "transport/nats/nats_task_client.hpp"

#include "common/unix_time.hpp"
#include "transport/nats/connection.hpp"
#include "transport/nats/control_channel.hpp"
#include "transport/nats/discovery.hpp"
#include "transport/nats/names.hpp"
#include "transport/nats/record_store.hpp"
#include "transport/nats/setup.hpp"
#include "transport/nats/status_view.hpp"
#include "transport/nats/wire.hpp"
#include "transport/receipt.hpp"

#include <fmt/format.h>

#include <algorithm>

#include <random>
#include <string_view>

namespace taskhost::transport::nats {
namespace {

// Room a task's record needs beside its assignment: ids, owner, counters and a modest checkpoint.
constexpr size_t kRecordRoom = 16 * 1024;

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}", prefix, rng());
}

std::vector<v1::WatchItem> items_of(const std::optional<std::string>& bytes) {
  if (!bytes) return {};
  auto items = decode_items(*bytes);
  return items ? std::move(*items) : std::vector<v1::WatchItem>{};
}

// Every client call turns library errors into the one exception TaskClient promises.
template <typename Fn>
auto guarded(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const ClientError&) {
    throw;
  } catch (const std::exception& e) {
    throw ClientError(fmt::format("{}: {}", what, e.what()));
  }
}

}  // namespace

NatsTaskClient::NatsTaskClient(NatsOptions options) : options_(std::move(options)) {
  guarded("nats", [&] {
    names_ = std::make_unique<Names>(options_.stream_prefix, options_.kv_bucket);
    connection_ = std::make_unique<Connection>(options_, "taskhost client");
    options_.replicas = replicas_for(*connection_, options_);
    ensure_streams(connection_->js(), *names_, options_);
    kvStore_Destroy(open_bucket(connection_->js(), *names_, options_));
    store_ = std::make_unique<RecordStore>(*connection_, *names_, /*patient=*/true);
    return 0;
  });
}

NatsTaskClient::~NatsTaskClient() = default;

std::vector<v1::TaskCompletion> NatsTaskClient::discover(std::chrono::milliseconds wait) {
  return guarded("discover", [&] { return nats::discover(*connection_, *names_, wait); });
}

TaskClient::Submitted NatsTaskClient::submit_task(const v1::TaskAssignment& in) {
  return guarded("submit", [&] {
    if (!in.has_execute()) throw ClientError("submit: only 'execute' assignments can be queued over NATS");
    const std::string& kind = in.execute().component_id();
    if (kind.empty()) throw ClientError("submit: the assignment has no kind (execute.component_id)");
    v1::TaskAssignment a = in;
    if (a.task_id().empty()) a.set_task_id(random_id("t-"));
    if (a.execute().attempt() == 0) a.mutable_execute()->set_attempt(1);
    const std::string& id = a.task_id();

    // An id that already ended is that task, as on the embedded transport: `submit --wait` answers with
    // its result. Stored again, it would run a second time once the server's duplicate window passed,
    // and its completion would lose to the first one's.
    // Unless it names another kind: then the caller means another task, and answering with the first
    // one's result would be wrong (as on the embedded transport).
    if (const auto ended = store_->completion_batch(id)) {  // one read: it exists, and what it says
      for (const auto& item : items_of(ended)) {
        if (item.has_completion() && !item.completion().kind().empty() && item.completion().kind() != kind) {
          throw ClientError(fmt::format("submit: task '{}' already ran as kind '{}'; not submitted as '{}'", id,
                                        item.completion().kind(), kind));
        }
      }
      return Submitted{id, true};
    }
    // The host that runs it records the assignment (and its checkpoints) in one KV value, so that another
    // host can resume it: an assignment that leaves no room for that in the server's max_payload could
    // run, but never be rescued.
    if (const int64_t max_payload = natsConnection_GetMaxPayload(connection_->nc()); max_payload > 0) {
      const size_t size = a.ByteSizeLong();
      if (size + kRecordRoom > static_cast<size_t>(max_payload)) {
        throw ClientError(fmt::format("submit: task '{}' is {} bytes; the server's max_payload is {} bytes, and the "
                                      "task's record must hold it and {} bytes more: pass large inputs by reference",
                                      id, size, max_payload, kRecordRoom));
      }
    }
    uint64_t revision = 0;
    const auto held = store_->task(id, &revision);
    if (held && held->record.kind != kind) {
      throw ClientError(fmt::format("submit: task '{}' already exists as kind '{}'; not submitted as '{}'", id,
                                    held->record.kind, kind));
    }
    // Held by a host: it is that task, running (as on the embedded transport; `submit --wait` waits for
    // its one result).
    if (held && !held->record.owner.empty()) return Submitted{id, true};
    // Handed back to the queue by a dead host's rescuer: that task, waiting to be resumed from its record
    // (queued again as new, it would lose its checkpoint).
    if (held && !held->record.rescued_from.empty()) return Submitted{id, true};
    TaskRecord r;
    r.task_id = id;
    r.kind = kind;
    r.attempt = a.execute().attempt();
    r.state = v1::PENDING;
    r.created_unix_ms = r.updated_unix_ms = unix_ms_now();
    const uint64_t rev = store_->write_task(r, revision);
    if (rev == 0) throw ClientError(fmt::format("submit: task '{}' was submitted concurrently", id));

    const std::string bytes = a.SerializeAsString();
    const std::string subject = names_->task_subject(kind);
    natsMsg* msg = nullptr;
    check(natsMsg_Create(&msg, subject.c_str(), nullptr, bytes.data(), static_cast<int>(bytes.size())), "message");
    natsMsgHeader_Set(msg, kRecordRevisionHeader, std::to_string(rev).c_str());
    const std::string msg_id = fmt::format("{}:{}", id, a.execute().attempt());
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id.c_str();
    jsPubAck* pa = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    // Carries a Nats-Msg-Id, so even a retry after a lost answer would be stored once.
    natsStatus s = retry_no_responders([&] { return js_PublishMsg(&pa, connection_->js(), msg, &po, &code); },
                                       deadline_in(kClientElectionWait));
    natsMsg_Destroy(msg);
    if (s != NATS_OK) {
      // Not queued: take the queued record back, or `status` would show the task pending forever. (Best
      // effort: the publish's own failure below is what the caller needs to see.)
      try {
        store_->erase(Names::task_key(id), rev);
      } catch (const std::exception&) {
      }
    }
    check(s, "store assignment on " + subject, code);
    jsPubAck_Destroy(pa);
    return Submitted{id, false};
  });
}

v1::DeliveryReceipt NatsTaskClient::control(const std::string& task_id, const std::string& message_id, const char* type,
                                            const std::string& bytes) {
  if (task_id.empty()) throw ClientError("no task id given");
  if (store_->completion_exists(task_id)) {
    return make_receipt(task_id, message_id, v1::DeliveryReceipt::TASK_ENDED,
                   fmt::format("task '{}' already ended", task_id));
  }
  natsInbox* inbox_raw = nullptr;
  check(natsInbox_Create(&inbox_raw), "inbox");
  const std::string inbox = inbox_raw;
  natsInbox_Destroy(inbox_raw);
  natsSubscription* sub = nullptr;
  check(natsConnection_SubscribeSync(&sub, connection_->nc(), inbox.c_str()), "subscribe for the receipt");
  struct SubGuard {
    natsSubscription* s;
    ~SubGuard() { natsSubscription_Destroy(s); }
  } guard{sub};

  const std::string subject = names_->control_subject(task_id);
  natsMsg* msg = nullptr;
  check(natsMsg_Create(&msg, subject.c_str(), nullptr, bytes.data(), static_cast<int>(bytes.size())), "message");
  natsMsgHeader_Set(msg, kControlHeader, type);
  natsMsgHeader_Set(msg, kReplyHeader, inbox.c_str());
  jsPubAck* pa = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  // A steering message's id is the sender's: one sent again (a retry) is stored once, within the stream's
  // duplicate window, instead of being applied twice.
  jsPubOptions po;
  jsPubOptions_Init(&po);
  const std::string msg_id = message_id.empty() ? std::string() : fmt::format("{}:{}", task_id, message_id);
  if (!msg_id.empty()) po.MsgId = msg_id.c_str();
  int tries = 0;
  // A cluster node's restart can leave the control stream without a leader for several seconds: the
  // message is sent again meanwhile rather than failing the command.
  natsStatus s = retry_no_responders(
      [&] {
        ++tries;
        return js_PublishMsg(&pa, connection_->js(), msg, &po, &code);
      },
      deadline_in(kClientElectionWait));
  natsMsg_Destroy(msg);
  check(s, "store control message on " + subject, code);
  // A duplicate on the first try was sent before, by another command (a later try may only have found
  // this command's own earlier one, whose answer was lost).
  const bool sent_before = pa != nullptr && pa->Duplicate && tries == 1;
  jsPubAck_Destroy(pa);
  if (sent_before) {
    return make_receipt(task_id, message_id, v1::DeliveryReceipt::REJECTED,
                        fmt::format("message '{}' was already sent", message_id));
  }

  natsMsg* answer = nullptr;
  if (natsSubscription_NextMsg(&answer, sub, receipt_wait_.count()) == NATS_OK) {
    v1::DeliveryReceipt r;
    const bool ok = r.ParseFromArray(natsMsg_GetData(answer), natsMsg_GetDataLength(answer));
    natsMsg_Destroy(answer);
    if (ok) return r;
  }
  // Nobody answered in time: say what the records know (the record read first, as in status()). The
  // message stays stored either way.
  const auto held = store_->task(task_id);
  if (const auto ended = items_of(store_->completion_batch(task_id)); !ended.empty()) {
    // It had not ended when the message was stored (checked above): the host may well have applied the
    // message, and a cancel whose task then ended canceled did what was asked. Saying "already ended"
    // would tell the sender that the message came too late.
    v1::TaskState state = v1::TASK_STATE_UNSPECIFIED;
    for (const auto& item : ended) {
      if (item.has_completion()) state = item.completion().state();
    }
    if (std::string_view(type) == "cancel" && state == v1::CANCELED) {
      return make_receipt(task_id, message_id, v1::DeliveryReceipt::ACCEPTED,
                          fmt::format("task '{}' ended canceled after the cancel was stored; its host did not "
                                      "confirm in time", task_id));
    }
    return make_receipt(task_id, message_id, v1::DeliveryReceipt::TASK_ENDED,
                        fmt::format("task '{}' ended ({}) after the message was stored; its host did not confirm "
                                    "whether the task took it", task_id, v1::TaskState_Name(state)));
  }
  if (held) {
    if (held->record.owner.empty()) {
      auto queued = make_receipt(task_id, message_id, v1::DeliveryReceipt::ACCEPTED,
                                 "queued: delivered when a host starts the task");
      queued.set_queued(true);
      return queued;
    }
    return make_receipt(task_id, message_id, v1::DeliveryReceipt::ACCEPTED,
                   fmt::format("stored; {} holds the task but did not confirm in time", held->record.owner));
  }
  if (store_->last_events_batch(task_id)) {
    return make_receipt(task_id, message_id, v1::DeliveryReceipt::ACCEPTED,
                   "stored; the task is running but its host did not confirm in time");
  }
  return make_receipt(task_id, message_id, v1::DeliveryReceipt::UNKNOWN_TASK,
                 fmt::format("unknown task '{}': nothing holds or records it. The message is stored and applies when "
                             "the task starts only if it was already submitted (queued by an orchestrator); a task "
                             "submitted after it does not see it",
                             task_id));
}

v1::DeliveryReceipt NatsTaskClient::send(const v1::SteeringMessage& in) {
  return guarded("send", [&] {
    v1::SteeringMessage m = in;
    if (m.message_id().empty()) m.set_message_id(random_id("m-"));
    return control(m.task_id(), m.message_id(), "steer", m.SerializeAsString());
  });
}

v1::DeliveryReceipt NatsTaskClient::cancel(const v1::CancelRequest& request) {
  return guarded("cancel", [&] {
    if (auto ended = cancel_queued(request)) return *ended;
    return control(request.task_id(), {}, "cancel", request.SerializeAsString());
  });
}

std::optional<v1::DeliveryReceipt> NatsTaskClient::cancel_queued(const v1::CancelRequest& request) {
  const std::string& id = request.task_id();
  if (id.empty()) return std::nullopt;
  uint64_t revision = 0;
  const auto held = store_->task(id, &revision);
  if (!held || !held->record.owner.empty() || held->record.state != v1::PENDING) return std::nullopt;
  // Queued, and no host holds it: it ends here, canceled. The record is marked by compare-and-set first:
  // a host that takes the task meanwhile wins, and the cancel goes the usual way (stored, applied at its
  // start). A host that takes it later finds the mark, and lets it go without running it.
  TaskRecord canceled = held->record;
  canceled.state = v1::CANCELED;
  canceled.updated_unix_ms = unix_ms_now();
  if (store_->write_task(canceled, revision) == 0) return std::nullopt;

  const std::string reason = request.reason().empty() ? "canceled while queued" : request.reason();
  v1::WatchItem ended;
  auto* e = ended.mutable_event();
  e->set_task_id(id);
  e->set_kind(canceled.kind);
  e->set_attempt(canceled.attempt);
  e->set_unix_ms(canceled.updated_unix_ms);
  e->mutable_state()->set_state(v1::CANCELED);
  e->mutable_state()->set_detail(reason);
  v1::WatchItem done;
  auto* c = done.mutable_completion();
  c->set_task_id(id);
  c->set_kind(canceled.kind);
  c->set_attempt(canceled.attempt);
  c->set_state(v1::CANCELED);
  c->set_unix_ms(canceled.updated_unix_ms);
  c->set_created_unix_ms(canceled.created_unix_ms);  // its submit time, not the cancel's
  c->mutable_error()->set_code(v1::CANCELLED);
  c->mutable_error()->set_message(reason);
  const std::string bytes = encode_items({ended, done});
  const std::string subject = names_->completion_subject(id);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.ExpectNoMessage = true;  // one terminal record per task, as the hosts store theirs
  jsPubAck* pa = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = retry_no_responders(
      [&] {
        return js_Publish(&pa, connection_->js(), subject.c_str(), bytes.data(), static_cast<int>(bytes.size()), &po,
                          &code);
      },
      deadline_in(kClientElectionWait));
  if (s != NATS_OK && code == kJsWrongLastSequence) {
    return make_receipt(id, {}, v1::DeliveryReceipt::TASK_ENDED, fmt::format("task '{}' already ended", id));
  }
  check(s, "store the completion of canceled task " + id, code);
  jsPubAck_Destroy(pa);
  if (!held->record.rescued_from.empty()) {
    return make_receipt(id, {}, v1::DeliveryReceipt::ACCEPTED,
                        fmt::format("task '{}' was waiting for a host to resume it after {} died: canceled", id,
                                    held->record.rescued_from));
  }
  return make_receipt(id, {}, v1::DeliveryReceipt::ACCEPTED,
                      fmt::format("task '{}' was queued: canceled before any host started it", id));
}

v1::TaskStatus NatsTaskClient::status(const std::string& task_id) {
  return guarded("status", [&] {
    // The record first: a host deletes it only after storing the completion, so a task that ends between
    // the two reads is found by the second. The other order could fall in between and find neither.
    std::optional<TaskRecord> record;
    if (auto held = store_->task(task_id)) record = std::move(held->record);
    const auto completion = items_of(store_->completion_batch(task_id));
    std::vector<v1::WatchItem> events;
    if (completion.empty()) {
      events = items_of(store_->last_events_batch(task_id));
    } else {
      record.reset();
    }
    auto s = status_view(task_id, record, events, completion);
    if (!s) throw ClientError(fmt::format("unknown task '{}'", task_id));
    return *s;
  });
}

v1::TaskStatusList NatsTaskClient::list() {
  return guarded("list", [&] {
    std::vector<std::string> ids;
    kvStore* kv = open_bucket(connection_->js(), *names_, options_);
    kvWatcher* w = nullptr;
    kvWatchOptions wo;
    kvWatchOptions_Init(&wo);
    wo.IgnoreDeletes = true;
    wo.MetaOnly = true;
    const std::string pattern = std::string(Names::task_key_prefix) + "*";
    natsStatus s = kvStore_Watch(&w, kv, pattern.c_str(), &wo);
    if (s == NATS_OK) {
      for (;;) {
        kvEntry* e = nullptr;
        if (kvWatcher_Next(&e, w, 5'000) != NATS_OK || e == nullptr) break;
        ids.push_back(decode_token(std::string_view(kvEntry_Key(e)).substr(Names::task_key_prefix.size())));
        kvEntry_Destroy(e);
      }
      kvWatcher_Destroy(w);
    }
    kvStore_Destroy(kv);
    check(s, "list task records");
    std::vector<v1::TaskStatus> found;
    for (const auto& id : ids) {
      try {
        found.push_back(status(id));
      } catch (const ClientError&) {
        // Ended and cleaned up between the listing and the read.
      }
    }
    // Oldest submission first, as `status` promises: the bucket lists keys by their last update, so a
    // task moved to the end whenever its record changed (a claim, a checkpoint, a cancel).
    std::stable_sort(found.begin(), found.end(), [](const v1::TaskStatus& a, const v1::TaskStatus& b) {
      return a.created_unix_ms() < b.created_unix_ms();
    });
    v1::TaskStatusList out;
    for (auto& t : found) *out.add_tasks() = std::move(t);
    return out;
  });
}

void NatsTaskClient::watch(const std::string& task_id, const std::function<bool(const v1::WatchItem&)>& on_item,
                           std::chrono::milliseconds timeout) {
  // Like the local API: watching an unknown task is an error now, not a silent wait for events that
  // never come.
  if (!task_id.empty()) status(task_id);
  guarded("watch", [&] {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Ordered = true;
    so.Config.DeliverPolicy = task_id.empty() ? js_DeliverNew : js_DeliverAll;
    const std::string subject = task_id.empty() ? names_->events_wildcard() : names_->task_events_filter(task_id);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    natsSubscription* sub = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    // Creating the consumer is a request to the stream's leader: while one is being elected (a cluster
    // node restarting) it times out or finds no responder. Asked again like a read, until the watch's
    // own deadline when it has one; an ephemeral consumer made by a request that timed out is removed
    // by the server once idle.
    auto create = [&] { return js_SubscribeSync(&sub, connection_->js(), subject.c_str(), nullptr, &so, &code); };
    check(timeout.count() > 0 ? retry_read(create, deadline) : retry_read(create), "watch " + subject, code);
    struct SubGuard {
      natsSubscription* s;
      ~SubGuard() { close_subscription(s); }
    } guard{sub};
    for (;;) {
      int64_t wait_ms = 1'000;
      if (timeout.count() > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return 0;
        wait_ms = std::min<int64_t>(wait_ms, left.count());
      }
      natsMsg* msg = nullptr;
      natsStatus s = natsSubscription_NextMsg(&msg, sub, wait_ms);
      if (s == NATS_TIMEOUT) continue;
      check(s, "watch " + subject);
      auto items = decode_items(std::string_view(natsMsg_GetData(msg) ? natsMsg_GetData(msg) : "",
                                                 static_cast<size_t>(natsMsg_GetDataLength(msg))));
      natsMsg_Destroy(msg);
      if (!items) continue;
      for (const auto& item : *items) {
        if (item.has_status()) continue;  // the snapshot for `status`, not an event
        if (!on_item(item)) return 0;
        // One task's stream ends with its completion, as the local API's does.
        if (!task_id.empty() && item.has_completion()) return 0;
      }
    }
  });
}

v1::TaskCompletion NatsTaskClient::wait(const std::string& task_id, std::chrono::milliseconds timeout) {
  std::optional<v1::TaskCompletion> done;
  watch(task_id,
        [&](const v1::WatchItem& item) {
          if (item.has_completion()) {
            done = item.completion();
            return false;
          }
          return true;
        },
        timeout.count() > 0 ? timeout : std::chrono::milliseconds(0));
  if (!done) throw ClientError(fmt::format("timed out after {} ms waiting for task '{}'", timeout.count(), task_id));
  return *done;
}

}  // namespace taskhost::transport::nats
