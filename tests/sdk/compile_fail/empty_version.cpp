// Must NOT compile: the manifest needs a version.
#include <taskhost/sdk.hpp>

struct E final : taskhost::TaskExecutor {
  taskhost::Status cancel(const taskhost::Task&, taskhost::TaskSink&) override { return {}; }
};

TASKHOST_PLUGIN("noversion", "", taskhost::kind<E>("noversion.kind"));
