// Asynchronous JetStream publishing with an answer per message, from one writer thread.
//
// Everything the host stores (event batches, completions, KV record writes) goes through here:
// publish() hands a message and a callback to the writer thread, which calls js_PublishMsgAsync; the
// server's PubAck (or error) comes back on a cnats thread and is handed to the callback. Transient
// failures (no answer within the timeout, no responders while a stream moves or a server restarts,
// disconnected) are retried with backoff for ever by resending the same message, so its Nats-Msg-Id or
// expected-sequence header makes the retry safe; other JetStream errors are retried for about two
// minutes. The callback gets the definite answer: stored, a lost compare-and-set ("wrong last
// sequence", at once), or the error that outlasted the retries.
//
// run() executes any closure on the writer thread, in order with the publishes: callers use it to keep
// the order of their own publishes and to do work that may call publish() without blocking their thread.
//
// Thread rule: publish()/run() are safe from any thread and never block on the network. Callbacks run on
// a cnats thread: they must be short, may call publish()/run(), and must not wait for other publishes.
#pragma once

#include "transport/nats/connection.hpp"
#include "transport/nats/msg_reaper.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace taskhost::transport::nats {

struct PublishResult {
  bool stored = false;    // the stream stored it; `seq` is its sequence
  uint64_t seq = 0;
  int js_code = 0;        // the JetStream error when not stored (e.g. kJsWrongLastSequence)
  std::string error;      // readable reason when not stored
  bool permanent = false; // not stored, and no retry can change that (larger than the server's max_payload)
};

// What the server must check before storing (the JetStream "expected" headers).
struct Expect {
  enum class Kind { nothing, no_message, last_subject_seq } kind = Kind::nothing;
  uint64_t seq = 0;
  static Expect none() { return {}; }
  static Expect empty_subject() { return {Kind::no_message, 0}; }
  static Expect subject_at(uint64_t seq) { return seq == 0 ? empty_subject() : Expect{Kind::last_subject_seq, seq}; }
};

class AsyncPublisher {
 public:
  using Done = std::function<void(const PublishResult&)>;

  explicit AsyncPublisher(Connection& connection, std::chrono::milliseconds ack_timeout = std::chrono::seconds(5));
  ~AsyncPublisher();  // stop()
  AsyncPublisher(const AsyncPublisher&) = delete;
  AsyncPublisher& operator=(const AsyncPublisher&) = delete;

  // Queues a message for `subject`. `headers` are (name, value) pairs; `msg_id` (may be empty) lets the
  // stream drop a duplicate of a retried message. `done` may be empty.
  void publish(std::string subject, std::string data, std::vector<std::pair<std::string, std::string>> headers,
               std::string msg_id, Expect expect, Done done);
  // Runs `fn` on the writer thread, after everything queued before it.
  void run(std::function<void()> fn);
  // Runs `fn` on the writer thread once `when` has come.
  void run_at(std::chrono::steady_clock::time_point when, std::function<void()> fn);

  // Waits until everything queued so far has its answer (or `timeout`); true when all answered.
  bool flush(std::chrono::milliseconds timeout);
  // Stops the writer thread; unsent messages are dropped, answers still arriving are ignored.
  void stop();

  size_t in_flight() const;

 private:
  struct Item {
    std::string subject, data, msg_id;
    std::vector<std::pair<std::string, std::string>> headers;
    Expect expect;
    Done done;
    int attempts = 0;
    std::chrono::steady_clock::time_point not_before{};
    std::function<void()> fn;  // a run() closure instead of a message
  };

  void loop();
  void send(Item item);
  static void ack_handler(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);
  void on_ack(natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae);
  void note_retry(const std::string& subject, const std::string& reason);
  // `item` has its final answer: hands it to its callback, then counts it settled (flush() waits for
  // that). Called without mu_.
  void answer(Item& item, const PublishResult& result);
  void settled();  // one queued item (message or run() closure) is done with; without mu_

  // What cnats' ack handler reaches this publisher through. cnats may answer a publish after stop() (a
  // server gone, a flush that gave up: it times the publish out later), so the relay outlives the
  // publisher: stop() unhooks it, and it is never freed (kept reachable for leak checkers).
  struct AckRelay {
    std::mutex mu;  // held while a handler runs: once stop() took it, no handler reaches the publisher
    AsyncPublisher* target = nullptr;
  };
  AckRelay* relay_ = nullptr;

  Connection& connection_;
  jsCtx* js_ = nullptr;
  const std::chrono::milliseconds ack_timeout_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Item> queue_;
  std::vector<Item> retries_;                     // waiting for their not_before
  std::unordered_map<natsMsg*, Item> pending_;    // sent, answer not yet back
  size_t unanswered_ = 0;                         // queued + retrying + pending
  bool stopping_ = false;
  std::mutex log_mu_;
  std::chrono::steady_clock::time_point last_retry_log_{};
  size_t retries_since_log_ = 0;
  MsgReaper reaper_;  // answered messages, destroyed in batches (msg_reaper.hpp)
  std::thread thread_;
};

}  // namespace taskhost::transport::nats
