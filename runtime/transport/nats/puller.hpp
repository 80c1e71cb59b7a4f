// Pulling tasks with backpressure: per kind, at most one pull request in flight, sized to the slots that
// are free right now, so the host never holds more tasks than it can run.
//
// Several kinds share the host's slots. A busy kind (its last request was filled) asks for all the room
// there is and waits at the server for it (up to pull_expiry); an idle one (its last request came back
// short) only looks for one message every 100 ms without waiting at the server, so idle kinds never sit
// on slots a busy one could use.
//
// Why not natsSubscription_Fetch: a Fetch waits for its round trip (≈1 ms here whatever the batch), which
// caps a fetch-per-free-slot consumer near 1k tasks/s. Instead the puller publishes pull requests
// ($JS.API.CONSUMER.MSG.NEXT) itself and receives the messages asynchronously on one inbox subscription:
// the server streams a request's messages as they become available, and the next request goes out as
// soon as the previous one is fulfilled and slots are free.
//
// The invariant, for all kinds together:  Σ (requested and not yet delivered) + Σ (delivered and not yet
// counted by the router) ≤ free slots reported by the router. A request ends when its batch is complete,
// when the server answers it with a status (408 expired, 409 ...; the rest of its batch is void), or when
// it is silent past its expiry (a server restart or leader change lost it). A message that arrives with no
// credit for it (late, or while draining) is handed back at once with a nak.
//
// Messages are handed on in batches: while more are queued on the inbox the puller gathers them (up to
// kMaxDeliveryBatch) and hands them on together once the queue is empty, so the host admits a pull's
// worth of tasks with one router call instead of paying locks and a worker wake-up per message.
//
// Thread rule: public methods are safe from any thread and never wait for the network. The deliver hook
// runs on a cnats thread and owns the messages it is given; free_slots is called with the puller's lock
// held, so it must not call back into the puller.
#pragma once

#include "transport/nats/connection.hpp"
#include "transport/nats/names.hpp"
#include "transport/nats/nats_options.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace taskhost::transport::nats {

class Puller {
 public:
  struct Delivered {
    const std::string* kind;  // the puller's own copy: valid while the puller lives
    natsMsg* msg;
  };
  static constexpr size_t kMaxDeliveryBatch = 64;

  struct Hooks {
    std::function<size_t(const std::string& kind)> free_slots;
    // Task messages with a credit each, in arrival order: what the inbox had queued, up to
    // kMaxDeliveryBatch, so the receiver can admit them together (Router::assign_batch)
    // instead of paying per message. The receiver owns the messages and must call settled(kind) once
    // per message when the router counts its task (or the message was answered otherwise).
    std::function<void(std::vector<Delivered>& batch)> deliver;
    // The kind's consumer seems to be gone (deleted, or never created): create it again.
    std::function<void(const std::string& kind)> ensure_consumer;
  };

  Puller(Connection& connection, const Names& names, const NatsOptions& options, Hooks hooks);
  ~Puller();  // stop()
  Puller(const Puller&) = delete;
  Puller& operator=(const Puller&) = delete;

  // The kinds to pull; kinds no longer listed stop being pulled.
  void set_kinds(const std::vector<std::string>& kinds);
  void settled(const std::string& kind, size_t messages = 1);
  void wake();             // slots may have freed
  void pause();            // no more requests; arriving messages are handed back (drain)
  void stop();

  struct Stats {
    uint64_t requests = 0;
    uint64_t delivered = 0;
    uint64_t handed_back = 0;
    size_t max_held = 0;     // most credits in use at once (requested + unsettled)
    uint64_t handovers = 0;  // calls of the deliver hook
    size_t largest_handover = 0;
  };
  Stats stats() const;

 private:
  struct KindState {
    std::string kind;
    std::string subject;
    std::string pull_subject;
    size_t index = 0;
    bool wanted = true;
    bool requesting = false;
    bool busy = false;  // the last request was filled: ask for all the room next time, not just one
    std::chrono::steady_clock::time_point last_poll{};
    uint64_t request_seq = 0;
    uint32_t batch = 0;
    uint32_t delivered = 0;
    std::chrono::steady_clock::time_point expires_at{};
    size_t unsettled = 0;
    bool needs_setup = false;
    std::chrono::steady_clock::time_point next_setup{};
  };
  struct SubClosure {
    Puller* self;
    uint64_t generation;
  };

  void loop();
  void wake_locked();
  void settle_locked(const std::string& kind, size_t messages);  // credits back, no wake-up
  void subscribe_locked();
  void request_locked(KindState& k, uint32_t batch, bool no_wait);
  size_t credits_in_use_locked() const;
  static void on_msg(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  void handle(uint64_t generation, natsSubscription* sub, natsMsg* msg);
  void hand_back(natsMsg* msg);
  // Hands the gathered deliveries on when nothing else is queued on the inbox (or the batch is full):
  // the next callback would follow at once, so waiting for it costs nothing. Called with `lock` held;
  // returns with it released.
  void deliver_gathered(natsSubscription* sub, std::unique_lock<std::mutex>& lock);
  // Gathered deliveries that will not be handed on (the subscription they came on is closing): nak
  // them and give their credits back. mu_ held.
  void hand_back_gathered_locked();

  Connection& connection_;
  const Names& names_;
  const NatsOptions options_;
  Hooks hooks_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<KindState>> kinds_;     // by kind
  std::unordered_map<std::string, KindState*> by_subject_;
  std::vector<KindState*> by_index_;
  std::string inbox_;
  uint64_t generation_ = 0;
  natsSubscription* sub_ = nullptr;
  std::vector<std::unique_ptr<SubClosure>> closures_;
  std::vector<Delivered> gathered_;  // current subscription's deliveries not yet handed on
  bool resubscribe_ = false;
  bool paused_ = false;
  bool stopping_ = false;
  bool woken_ = false;
  size_t rr_ = 0;  // round-robin start, so one busy kind does not starve the others
  Stats stats_;
  std::thread thread_;
};

}  // namespace taskhost::transport::nats
