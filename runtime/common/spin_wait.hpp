// Spin-waiting: one relax step, and a mutex that spins briefly before it sleeps, for locks held a
// microsecond or two by threads that hand work to each other.
//
// Why: the router's lock is taken once per task by the submitting thread (admission) and once by the
// pool thread (retirement), each holding it about a microsecond. With a plain std::mutex a collision
// put the loser to sleep in the kernel and made the winner's unlock a futex wake-up; on the 2-core
// development machine that was a third of both threads' time and most of their context switches
// (bench_e2e, one task at a time: 71,600 -> 15,800 context switches and 281k -> 347k tasks/s once the
// loser spins). The spin is bounded (about 5-10 us), so a holder that was preempted costs a spinner
// no more than that before it sleeps as before.
//
// Meets Lockable (lock / try_lock / unlock): use it with std::lock_guard and std::unique_lock, and
// with std::condition_variable_any.
#pragma once

#include <atomic>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace taskhost {

// One step of a spin-wait: tells the core this thread is busy-waiting (x86 PAUSE, ARM YIELD).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class SpinThenBlockMutex {
 public:
  static constexpr int kSpins = 200;

  void lock() {
    for (int i = 0; i < kSpins; ++i) {
      // Read before trying: a failed try_lock is a write to the lock's cache line, which slows the
      // holder down on its way to unlock.
      if (!held_.load(std::memory_order_relaxed) && m_.try_lock()) {
        held_.store(true, std::memory_order_relaxed);
        return;
      }
      cpu_relax();
    }
    m_.lock();
    held_.store(true, std::memory_order_relaxed);
  }
  bool try_lock() {
    if (!m_.try_lock()) return false;
    held_.store(true, std::memory_order_relaxed);
    return true;
  }
  void unlock() {
    held_.store(false, std::memory_order_relaxed);
    m_.unlock();
  }

 private:
  std::mutex m_;
  std::atomic<bool> held_{false};  // a hint for spinners; the mutex decides
};

}  // namespace taskhost
