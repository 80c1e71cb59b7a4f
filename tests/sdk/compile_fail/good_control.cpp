// MUST compile: the control for the must-not-compile cases (same flags, one valid plugin).
#include <taskhost/sdk.hpp>

struct E final : taskhost::TaskExecutor {
  taskhost::Status cancel(const taskhost::Task&, taskhost::TaskSink&) override { return {}; }
};

TASKHOST_PLUGIN("good", "1.0.0", taskhost::kind<E>("good.kind"));
