#include "tasks/lifecycle.hpp"

namespace taskhost::tasks {

std::string_view state_name(v1::TaskState s) {
  switch (s) {
    case v1::PENDING: return "pending";
    case v1::RUNNING: return "running";
    case v1::WAITING_INPUT: return "waiting_input";
    case v1::SUCCEEDED: return "succeeded";
    case v1::FAILED: return "failed";
    case v1::CANCELED: return "canceled";
    default: return "unspecified";
  }
}

}  // namespace taskhost::tasks
