// Task events and completions onto the events stream, coalesced per task.
//
// Events queue per task; a flush on the writer thread turns everything queued for a task into one
// message: <P>.events.<task>.event, or — when the completion is among them — <P>.events.<task>.completion
// carrying the task's remaining events and the completion last, stored only if that subject is still
// empty (the first completion for a task id wins, across hosts and retries).
//
// An events batch ends with a snapshot of the task's status as of its last event (a WatchItem status:
// state, detail, progress, pending input request, folded from every event of the task so far), so the
// task's latest batch alone answers `status`: a batch holding only an outbound message or an output
// delta would otherwise say nothing of them. A completion batch needs none (the completion is final).
//
// A task's events wait up to `linger` for company before they are published on their own; its
// completion waits at most a millisecond (so one wake-up of the writer stores many). So a task that starts and ends within the linger costs one stored message
// (what keeps a busy host close to a bare consumer), and an event of a long task is visible to watchers
// at most `linger` after it happened.
//
// Thread rule: event()/completion() are safe from any thread, never block, and keep per-task order as
// called. The stored callback runs on a cnats thread (AsyncPublisher's rule).
#pragma once

#include "transport/nats/async_publisher.hpp"

#include "taskhost/v1/status.pb.h"
#include "transport/nats/names.hpp"

#include "taskhost/v1/completion.pb.h"
#include "taskhost/v1/events.pb.h"

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace taskhost::transport::nats {

class EventBatcher {
 public:
  // The answer for a completion: stored; or not stored because another completion for the task id was
  // there first (result.js_code == kJsWrongLastSequence); or not stored for another reason (error).
  using CompletionStored = std::function<void(const v1::TaskCompletion& completion, const PublishResult& result)>;

  // A batch is cut into messages of at most about `max_batch_bytes` (keep it well under the server's
  // max_payload): a program writing megabytes of output within one linger made batches the server
  // refused, and watchers lost that output.
  static constexpr size_t kMaxBatchBytes = 512u << 10;
  EventBatcher(AsyncPublisher& publisher, const Names& names, std::string worker_id, CompletionStored stored,
               std::chrono::milliseconds linger = std::chrono::milliseconds(20),
               size_t max_batch_bytes = kMaxBatchBytes);

  void event(const v1::TaskEvent& event);
  void completion(const v1::TaskCompletion& completion);
  // The task left this host without a completion of its own (another host holds it now): its
  // standing status is dropped, and so is drop()'s mark (this was the attempt's last word).
  void forget(const std::string& task_id);
  // This host's attempt of the task is fenced (another host took it over or finished it): what is
  // queued for it goes unpublished, and so do its events from now on, until forget().
  void drop(const std::string& task_id);
  // While `open` answers false nothing is published: batches are kept, and looked at again every linger
  // (a host that may have been declared dead holds its writes until it knows which tasks are still its
  // own). Called on the writer thread before each flush; must be cheap. Set once, before any event.
  void set_gate(std::function<bool()> open);

 private:
  struct Pending {
    std::string batch;                 // delimited WatchItems
    uint32_t attempt = 0;              // of the first event
    uint64_t first_seq = 0;
    std::chrono::steady_clock::time_point since{};
    std::optional<v1::TaskCompletion> completion;
  };
  Pending& pending_locked(const std::string& task_id);
  // Makes room for `more` bytes in the task's batch: a batch that would outgrow max_batch_bytes_ goes to
  // ready_ as it is (with its status snapshot) and the task starts a new one.
  Pending& room_locked(const std::string& task_id, size_t more);
  void schedule_locked(std::chrono::steady_clock::time_point when);
  void flush();

  AsyncPublisher& publisher_;
  const Names& names_;
  const std::string worker_id_;
  CompletionStored stored_;
  const std::chrono::milliseconds linger_;
  const size_t max_batch_bytes_;
  std::mutex mu_;
  std::unordered_map<std::string, Pending> pending_;
  // Each running task's status folded from its events, for the snapshot ending its events batches.
  // Dropped with the task's completion, or by forget().
  std::unordered_map<std::string, v1::TaskStatus> standing_;
  std::vector<std::string> order_;  // tasks in pending_, by first arrival
  struct Ready {
    std::string task_id;
    Pending p;
  };
  std::vector<Ready> ready_;  // events batches cut at max_batch_bytes_, published first by the next flush
  std::optional<std::chrono::steady_clock::time_point> scheduled_;  // the flush already asked for
  std::unordered_set<std::string> dropped_;  // drop()ped tasks, until forget()
  std::function<bool()> gate_;
};

}  // namespace taskhost::transport::nats
