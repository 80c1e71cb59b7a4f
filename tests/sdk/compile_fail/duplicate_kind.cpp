// Must NOT compile: two kinds with one name would give the host an ambiguous plugin.
#include <taskhost/sdk.hpp>

struct E final : taskhost::TaskExecutor {
  taskhost::Status cancel(const taskhost::Task&, taskhost::TaskSink&) override { return {}; }
};

TASKHOST_PLUGIN("dup", "1.0.0", taskhost::kind<E>("dup.kind"), taskhost::kind<E>("dup.kind"));
