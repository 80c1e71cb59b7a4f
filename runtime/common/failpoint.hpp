// Failpoints: named places where a test that drives real host processes makes the host meet a fault it
// cannot provoke on demand — a message the server stored but the host's consumer never handed over,
// as nats-server 2.9 with cnats 3.4 was seen to do after a cluster node restarted (control_channel.hpp).
// The recovery code then runs on every run of the test, not one run in three.
//
// Armed only through the environment, read once: TASKHOST_FAILPOINTS="name[=count],..." makes
// failpoint("name") answer true the first `count` times it is asked (default 1), false afterwards and
// for every name not listed. Unarmed (the variable unset, as in production), a call is one load of a
// flag. Each firing is logged as a warning, so a host log always says when one was armed.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace taskhost {

bool failpoint(std::string_view name);

// What a TASKHOST_FAILPOINTS value arms: name → how many times it fires. An item whose count is not a
// non-negative number is left out and named through `bad_item`.
std::map<std::string, long, std::less<>> parse_failpoints(std::string_view spec,
                                                         const std::function<void(std::string_view)>& bad_item);

}  // namespace taskhost
