#include "common/stop_signals.hpp"

#include "common/log.hpp"

#include <cstdlib>
#include <thread>

namespace taskhost {
namespace {
const char* name_of(int sig) { return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal"; }
}  // namespace

bool stop_pending(const sigset_t& signals) {
  sigset_t pending;
  if (::sigpending(&pending) != 0) return false;
  for (int sig : {SIGTERM, SIGINT}) {
    if (sigismember(&signals, sig) == 1 && sigismember(&pending, sig) == 1) return true;
  }
  return false;
}

int wait_for_stop(const sigset_t& signals, const std::function<void()>& on_hup) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      on_hup();
      continue;
    }
    return sig;
  }
}

void exit_on_next_stop(const sigset_t& signals) {
  std::thread([signals] {
    const int sig = wait_for_stop(signals, [] {});
    log::warn("{} again: exiting now, without waiting for the drain; what still runs resumes in the next run",
              name_of(sig));
    std::_Exit(128 + sig);
  }).detach();
}

}  // namespace taskhost
