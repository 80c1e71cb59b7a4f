// Steering and cancellation that reach whichever host holds the task, durably.
//
// Senders store every control message on the control stream (<P>.control.<task>; header
// "Taskhost-Control: steer|cancel"; optionally "Taskhost-Reply: <inbox>" for a DeliveryReceipt). Every
// host reads the whole stream with an ordered consumer from its beginning, so nothing sent before a host
// started or while it was disconnected is missed:
//   - a message for a task open here is applied at once (apply hook);
//   - a message for a task that ended here recently is answered "task ended" (ended hook);
//   - any other message is kept: when this host later opens that task (claims it from the queue, or
//     re-attaches it), the kept messages stored after the task's assignment are applied first, in stream
//     order — steering sent before the task was picked up applies at start, while a message meant for an
//     earlier run of the same task id (a retry re-published later) does not. Kept messages expire with
//     the stream's max age.
// open()/close() and the hooks are serialized on one lock, so a task sees its control messages in
// stream order whether they were kept or arrived live.
//
// The ordered consumer is not trusted alone: after a cluster node's restart, all three hosts' consumers
// were seen to pass over one stored message (nats-server 2.9 with cnats 3.4; the test "after a cluster
// node restarts, a cancel still reaches ..."), and a skipped cancel let its task run on. Three checks:
//   - before a delivered message is applied to an open task, the task's subject is read by direct get
//     from just after the last message handled for it: anything stored in between was passed over and
//     is applied first, so the task still sees its messages in stream order (control messages are rare:
//     one small request each);
//   - every kAuditEvery the channel asks the stream how many messages each open task's subject holds
//     (one request) and reads the subjects holding more than it has handled: that finds a passed-over
//     message that no later one followed;
//   - messages kept for a task not open yet: open() reads the task's subject up to the newest kept
//     message and applies what the consumer passed over among them, in order (only when something was
//     kept, so the usual open makes no request).
// Messages are recognised by stream sequence, so one seen twice is dropped. The fault tests make the
// host's consumer lose messages on purpose (failpoints nats.control.lose_steer / lose_cancel,
// common/failpoint.hpp), so that each of the three paths runs on every run.
//
// Thread rule: public methods are safe from any thread. Hooks run on the cnats delivery thread, on the
// audit's thread or inside open(), with the channel's lock held: they must not block and must not call
// back into the channel.
#pragma once

#include "transport/nats/connection.hpp"
#include "transport/nats/control_mark.hpp"
#include "transport/nats/names.hpp"
#include "transport/nats/nats_options.hpp"
#include "transport/nats/serial_worker.hpp"

#include "taskhost/v1/cancel.pb.h"
#include "taskhost/v1/steering.pb.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace taskhost::transport::nats {

inline constexpr const char* kControlHeader = "Taskhost-Control";
inline constexpr const char* kReplyHeader = "Taskhost-Reply";

struct ControlItem {
  enum class Type { steer, cancel };
  Type type = Type::steer;
  std::string task_id;
  v1::SteeringMessage steer;
  v1::CancelRequest cancel;
  std::string reply;  // where the receipt goes; empty = nobody asked
  uint64_t seq = 0;   // stream sequence
  int64_t stored_unix_ns = 0;  // when the stream stored it (server clock)
  std::chrono::steady_clock::time_point received{};
};

class ControlChannel {
 public:
  struct Hooks {
    std::function<void(const ControlItem&)> apply;  // the task is open here
    std::function<void(const ControlItem&)> ended;  // the task ended here recently
  };

  ControlChannel(Connection& connection, const Names& names, const NatsOptions& options, Hooks hooks);
  ~ControlChannel();  // stop()
  ControlChannel(const ControlChannel&) = delete;
  ControlChannel& operator=(const ControlChannel&) = delete;

  // Starts reading the control stream from its beginning. Throws NatsError.
  void start();
  void stop();
  // How often open tasks' subjects are checked for messages the consumer passed over.
  static constexpr std::chrono::seconds kAuditEvery{2};

  // Attempt `attempt` of the task is now held here (the router knows it): apply its kept messages
  // stored at or after `assigned_unix_ns` (0 = all) and not taken according to `resumed` (what the
  // checkpoint a re-attached attempt resumes from already reflects), then live ones. Ignored when that
  // attempt was already closed (a task can end before the code that assigned it gets to open it). Makes
  // direct gets when messages were kept for the task (see above); otherwise no request.
  void open(const std::string& task_id, uint32_t attempt, int64_t assigned_unix_ns, const ControlMark& resumed = {});
  // Attempt `attempt` ended here: later messages for the task are answered "ended" for a while.
  // Returns whether any control message reached it (then its subject is worth purging).
  bool close(const std::string& task_id, uint32_t attempt);

  // Sends `receipt` to `reply` (core NATS; best effort).
  static void send_receipt(natsConnection* nc, const std::string& reply, const v1::DeliveryReceipt& receipt);

 private:
  static void on_msg(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  // Decodes one stored control message (and frees it); `seq` and `stored_unix_ns` from the stream.
  // Null (logged once) when it is malformed.
  std::optional<ControlItem> decode(natsMsg* msg, uint64_t seq, int64_t stored_unix_ns);
  // Applies, answers or keeps `item`. Returns false when it had been handled before.
  bool handle(ControlItem item);
  // The messages stored on `subject` with a sequence in [from, before), decoded, in stream order. Direct
  // gets; called without the lock.
  std::vector<ControlItem> read_stored(const std::string& subject, uint64_t from, uint64_t before);
  // Handles those of them not handled yet; returns how many.
  size_t catch_up(const std::string& subject, uint64_t from, uint64_t before);
  // True (and nothing changes) when `attempt` of the task already ended here; forgets an older one.
  bool closed_locked(const std::string& task_id, uint32_t attempt);
  // Marks the task open and applies `kept` and the not-yet-handled of `found` in stream order.
  void open_locked(const std::string& task_id, uint32_t attempt, int64_t assigned_unix_ns, const ControlMark& resumed,
                   std::vector<ControlItem> kept, std::vector<ControlItem> found);
  struct Open;
  // Counts `item` as handled for its open task and applies it, unless it was meant for an earlier run.
  void apply_locked(Open& held, const ControlItem& item);
  void expire_locked();
  bool handled_before_locked(uint64_t seq) const;
  bool seen_locked(uint64_t seq);  // records `seq`; true if it was handled before
  void audit();                    // on worker_: finds messages the consumer passed over

  Connection& connection_;
  const Names& names_;
  const NatsOptions options_;
  Hooks hooks_;

  mutable std::mutex mu_;
  natsSubscription* sub_ = nullptr;
  struct Open {
    uint32_t attempt = 0;
    int64_t assigned_unix_ns = 0;  // messages stored before it were meant for an earlier run
    size_t handled = 0;            // its messages handled here (applied or passed over as too old)
    uint64_t last_seq = 0;         // stream sequence of the newest of them
    ControlMark resumed;           // the messages an earlier attempt took before the checkpoint resumed from
  };
  std::unordered_map<std::string, Open> open_;  // tasks held here
  std::unordered_set<std::string> touched_;               // open tasks that got a message
  std::unordered_map<std::string, std::vector<ControlItem>> kept_;
  struct KeptRef {
    std::chrono::steady_clock::time_point received;
    std::string task_id;
    uint64_t seq;
  };
  std::deque<KeptRef> kept_order_;  // oldest first, for expiry
  size_t kept_count_ = 0;
  std::unordered_map<std::string, uint32_t> closed_;     // task → attempt that ended here
  std::deque<std::string> closed_order_;
  // Stream sequences handled (the newest kMaxSeen): a consumer's reset and the audit replay some.
  std::set<uint64_t> seen_;
  uint64_t forgotten_through_ = 0;  // sequences up to this one left seen_ and count as handled
  std::unique_ptr<SerialWorker> worker_;  // runs audit(): requests, never on a cnats thread
};

}  // namespace taskhost::transport::nats
