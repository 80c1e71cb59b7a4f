#include "plugin/isolated/frame_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <cstring>

namespace taskhost::plugin::isolated {

FrameSocket::~FrameSocket() { ::close(fd_); }

bool FrameSocket::send(const v1::ChildFrame& frame) {
  const size_t size = frame.ByteSizeLong();
  if (size > kMaxFrameBytes) return false;
  std::lock_guard lock(send_mu_);
  send_buffer_.resize(4 + size);
  const auto n = static_cast<uint32_t>(size);
  for (int i = 0; i < 4; ++i) send_buffer_[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  if (!frame.SerializeToArray(send_buffer_.data() + 4, static_cast<int>(size))) return false;
  const char* at = send_buffer_.data();
  size_t left = send_buffer_.size();
  while (left > 0) {
    const ssize_t wrote = ::send(fd_, at, left, MSG_NOSIGNAL);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return false;
    at += wrote;
    left -= static_cast<size_t>(wrote);
  }
  if (send_buffer_.capacity() > (1u << 20)) send_buffer_ = std::string();  // do not keep a huge frame's buffer
  return true;
}

bool FrameSocket::read_exact(char* data, size_t size, const std::chrono::steady_clock::time_point* deadline,
                             Received* failure) {
  while (size > 0) {
    int wait_ms = -1;
    if (deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
      wait_ms = static_cast<int>(std::max<int64_t>(left.count(), 0));
    }
    pollfd p[2] = {{fd_, POLLIN, 0}, {pidfd_, POLLIN, 0}};
    const int ready = ::poll(p, pidfd_ >= 0 ? 2 : 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      *failure = Received::timed_out;
      return false;
    }
    if (ready > 0 && p[0].revents == 0) {  // the process exited and left nothing more to read
      *failure = Received::closed;
      return false;
    }
    const ssize_t got = ::read(fd_, data, size);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) {
      *failure = Received::closed;  // EOF, or the peer reset the connection: either way it is gone
      return false;
    }
    data += got;
    size -= static_cast<size_t>(got);
  }
  return true;
}

FrameSocket::Received FrameSocket::receive(v1::ChildFrame& frame, std::string* why, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  const auto* bound = timeout_ms >= 0 ? &deadline : nullptr;
  Received failure = Received::closed;
  unsigned char prefix[4];
  if (!read_exact(reinterpret_cast<char*>(prefix), sizeof prefix, bound, &failure)) return failure;
  const size_t size = size_t{prefix[0]} | size_t{prefix[1]} << 8 | size_t{prefix[2]} << 16 | size_t{prefix[3]} << 24;
  if (size > kMaxFrameBytes) {
    *why = "a frame of " + std::to_string(size) + " bytes (the limit is " + std::to_string(kMaxFrameBytes) + ")";
    return Received::corrupt;
  }
  // The body is read as it arrives, its buffer grown as it does: a size prefix alone (from a broken
  // writer) costs no allocation of that size.
  const auto body_deadline = std::chrono::steady_clock::now() + kFrameBodyTimeout;
  const auto* body_bound = bound && *bound < body_deadline ? bound : &body_deadline;
  constexpr size_t kChunk = 1u << 20;
  receive_buffer_.clear();
  while (receive_buffer_.size() < size) {
    const size_t have = receive_buffer_.size();
    const size_t step = std::min(kChunk, size - have);
    try {
      receive_buffer_.resize(have + step);
    } catch (const std::bad_alloc&) {
      *why = "a frame of " + std::to_string(size) + " bytes, more than this host could allocate";
      return Received::corrupt;
    }
    if (!read_exact(receive_buffer_.data() + have, step, body_bound, &failure)) {
      if (failure != Received::timed_out || body_bound == bound) return failure;
      *why = "a frame of " + std::to_string(size) + " bytes of which " + std::to_string(have) + " arrived within " +
             std::to_string(kFrameBodyTimeout.count()) + " ms";
      return Received::corrupt;
    }
  }
  if (!frame.ParseFromArray(receive_buffer_.data(), static_cast<int>(size))) {
    *why = "a frame of " + std::to_string(size) + " bytes that is not a ChildFrame";
    return Received::corrupt;
  }
  if (receive_buffer_.capacity() > (1u << 20)) receive_buffer_ = std::string();
  return Received::frame;
}

void FrameSocket::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

}  // namespace taskhost::plugin::isolated
