// Must NOT compile: a comma would split the kind in the manifest's comma-separated list.
#include <taskhost/sdk.hpp>

struct E final : taskhost::TaskExecutor {
  taskhost::Status cancel(const taskhost::Task&, taskhost::TaskSink&) override { return {}; }
};

TASKHOST_PLUGIN("bad", "1.0.0", taskhost::kind<E>("bad,kind"));
