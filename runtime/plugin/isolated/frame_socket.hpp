// One end of the socket pair between the host and a plugin process: whole ChildFrame messages, each
// preceded by its size (4 bytes, little-endian), over a SOCK_STREAM Unix socket.
//
// Why a stream and a size prefix, not SOCK_SEQPACKET: a frame carries payloads up to the host's
// max_plugin_payload (8 MiB unless raised), past what a datagram may hold.
//
// Thread rule: send() is safe from any thread (one lock keeps frames whole); receive() belongs to one
// reading thread. Ownership: owns the descriptor.
#pragma once

#include "taskhost/v1/plugin_frames.pb.h"

#include <chrono>
#include <mutex>
#include <string>

namespace taskhost::plugin::isolated {

// A frame past this is not a frame but a corrupt stream: the reader stops instead of allocating it.
inline constexpr size_t kMaxFrameBytes = 256u << 20;
// A frame once begun must be whole within this: a writer that stops halfway (a plugin writing to the
// socket itself, or reading from it) has broken the stream, and waiting on would wedge the reader.
inline constexpr std::chrono::milliseconds kFrameBodyTimeout{10'000};

class FrameSocket {
 public:
  explicit FrameSocket(int fd) : fd_(fd) {}
  ~FrameSocket();
  FrameSocket(const FrameSocket&) = delete;
  FrameSocket& operator=(const FrameSocket&) = delete;

  // False when the peer is gone (never SIGPIPE) or the frame is too large.
  bool send(const v1::ChildFrame& frame);

  enum class Received { frame, closed, timed_out, corrupt };
  // Blocks for the next whole frame; `timeout_ms` < 0 waits for as long as it takes, otherwise it bounds
  // the whole frame, not only its start. A frame whose body does not follow its size within
  // kFrameBodyTimeout is corrupt. On corrupt, `why` says what was wrong with the stream.
  Received receive(v1::ChildFrame& frame, std::string* why, int timeout_ms = -1);

  // Also ends receive() (as closed) when `pidfd` becomes readable, i.e. the process at the other end
  // exited, once nothing is left to read: a process it forked may still hold the other end open, and
  // the socket alone would then never report the exit. Not owned.
  void watch_process(int pidfd) { pidfd_ = pidfd; }

  // No more frames from this end: the peer's receive() then answers closed once it read the rest.
  void shutdown_write();
  int fd() const { return fd_; }

 private:
  bool read_exact(char* data, size_t size, const std::chrono::steady_clock::time_point* deadline, Received* failure);

  const int fd_;
  int pidfd_ = -1;
  std::mutex send_mu_;
  std::string send_buffer_;  // guarded by send_mu_; reused so a frame is one allocation-free write
  std::string receive_buffer_;
};

}  // namespace taskhost::plugin::isolated
