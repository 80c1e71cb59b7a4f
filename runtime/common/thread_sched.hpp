// What the kernel's scheduler knows about one of this process's threads: whether it is runnable now,
// and how much CPU time it has had. Linux only (/proc/self/task/<tid>/{stat,schedstat}).
//
// Why: a thread that made no progress for a while was either blocked (asleep in a call: another thread
// would help) or runnable but not running (the machine's CPUs were busy: another thread would only add
// to the queue). From outside the thread, only the scheduler can tell the two apart.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace taskhost {

// The calling thread's kernel thread id.
pid_t current_thread_id();

struct ThreadSample {
  bool runnable = false;  // running or waiting for a CPU (state R), as opposed to asleep or stopped
  uint64_t on_cpu_ns = 0; // CPU time it has had in all
};

// Thread `tid` of this process now; nullopt when the kernel does not report it or the thread is gone.
// Reads two small /proc files: for an occasional check, not a hot path.
std::optional<ThreadSample> sample_thread(pid_t tid);

}  // namespace taskhost
