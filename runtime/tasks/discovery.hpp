// Discovery (protocol.md §1): a host answers with every kind it serves now, as a SUCCEEDED completion
// whose `components` list the kinds. One builder for every way the question arrives — a discovery
// assignment through the router, or a request on NATS' discover subject.
#pragma once

#include "registry/kind_registry.hpp"

#include "taskhost/v1/completion.pb.h"

#include <string>

namespace taskhost::tasks {

// The answer for `task_id` from host `worker_id`: every kind `registry` resolves now, with its
// description and schemas. Any thread.
v1::TaskCompletion discovery_answer(const registry::KindRegistry& registry, const std::string& worker_id,
                                    const std::string& task_id);

}  // namespace taskhost::tasks
