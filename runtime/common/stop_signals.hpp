// How `taskhost serve` stops: the first SIGTERM or SIGINT drains (running tasks get the grace period),
// a second one during the drain exits at once, as an operator pressing Ctrl-C twice means. Both serve
// loops (embedded and NATS) use these, with the signals blocked in every thread and taken by sigwait.
#pragma once

#include <csignal>
#include <functional>

namespace taskhost {

// Waits for SIGTERM or SIGINT (among `signals`) and returns it; each SIGHUP calls `on_hup` instead.
int wait_for_stop(const sigset_t& signals, const std::function<void()>& on_hup);

// Whether a SIGTERM or SIGINT (among `signals`, which are blocked) is waiting to be taken: for work done
// before the serve loop (connecting to a server at start) to give up at once instead of finishing first.
bool stop_pending(const sigset_t& signals);
// From now on another SIGTERM or SIGINT ends the process at once (exit status 128 + signal), without
// waiting for the drain: like a SIGKILL, whatever was still running is resumed by the next run (or, on
// NATS, by another host). SIGHUP is ignored from here on.
void exit_on_next_stop(const sigset_t& signals);

}  // namespace taskhost
