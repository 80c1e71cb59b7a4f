// Glue for taskhost::TaskSink (not part of the author's API): NUL-terminated copies of string views, spans
// from bytes, and the one wrapper every sink call goes through.
//
// Thread rule: everything here is per call; nothing is shared.
#pragma once

#include <taskhost/plugin.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <taskhost/sdk/status.hpp>

namespace taskhost::internal {

// Owns NUL-terminated copies of the strings one sink call passes, alive until the call returns.
class CStrings {
 public:
  // Always a valid C string ("" for an empty view).
  const char* text(std::string_view s) { return store(s); }
  // NULL for an empty view: the ABI's "absent" for optional strings.
  const char* optional(std::string_view s) { return s.empty() ? nullptr : store(s); }

 private:
  const char* store(std::string_view s) {
    std::string& slot = slots_.at(used_++);
    slot.assign(s.data(), s.size());
    return slot.c_str();
  }
  std::array<std::string, 4> slots_;
  std::size_t used_ = 0;
};

inline th_bytes to_bytes(std::string_view s) noexcept {
  return th_bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Readable text for a status the host answered a sink call with.
inline Status status_from_host(th_status code) {
  switch (code) {
    case TH_OK:
      return Status::Ok();
    case TH_TASK_ENDED:
      return {code, "the task already ended; the write was dropped"};
    case TH_STALE_ATTEMPT:
      return {code, "this attempt was superseded by a newer one; the write was dropped"};
    case TH_UNKNOWN_TASK:
      return {code, "the host does not know this task ref"};
    case TH_INVALID_ARGUMENT:
      return {code, "the host rejected an argument of this call"};
    case TH_UNSUPPORTED:
      return {code, "the host does not support this call"};
    default:
      return {code, "the host answered an unknown status code"};
  }
}

// Runs one host call `fn(CStrings&) -> th_status`. Never throws: a sink is called from plugin threads
// where an escaping exception would terminate the process.
template <typename Fn>
Status call_host(const th_host_api* host, Fn&& fn) noexcept {
  try {
    if (host == nullptr) return Status::Failed("this TaskSink is not bound to a task");
    CStrings strings;
    return status_from_host(fn(strings));
  } catch (...) {
    return Status{TH_FAILED, {}};  // only allocation can throw here; an empty message allocates nothing
  }
}

}  // namespace taskhost::internal
