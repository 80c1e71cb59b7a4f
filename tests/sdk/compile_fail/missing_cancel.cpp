// Must NOT compile: cancel() is required, so an executor without it cannot be registered.
#include <taskhost/sdk.hpp>

struct E final : taskhost::TaskExecutor {
  taskhost::Status start(const taskhost::Task&, taskhost::TaskSink& sink) override { return sink.succeed(); }
};

TASKHOST_PLUGIN("nocancel", "1.0.0", taskhost::kind<E>("nocancel.kind"));
