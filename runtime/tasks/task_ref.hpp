// Task refs: the opaque th_task_ref a plugin gets for one attempt of one task.
//
// A ref is never a pointer: it packs the task's serial number (unique per router, never reused) with the
// low bits of the attempt. The sink looks the serial up on every call, so a ref that outlived its task or
// its attempt is answered TH_TASK_ENDED or TH_STALE_ATTEMPT instead of being dereferenced.
#pragma once

#include <taskhost/plugin.h>

#include <cstdint>

namespace taskhost::tasks {

inline constexpr unsigned kAttemptBits = 24;
inline constexpr uint64_t kAttemptMask = (uint64_t{1} << kAttemptBits) - 1;

constexpr th_task_ref make_task_ref(uint64_t serial, uint32_t attempt) {
  return (serial << kAttemptBits) | (attempt & kAttemptMask);
}
constexpr uint64_t ref_serial(th_task_ref ref) { return ref >> kAttemptBits; }
constexpr bool ref_matches_attempt(th_task_ref ref, uint32_t attempt) {
  return (ref & kAttemptMask) == (attempt & kAttemptMask);
}

}  // namespace taskhost::tasks
