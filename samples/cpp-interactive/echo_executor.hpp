// interactive.echo: succeeds at once with its input. The smallest useful executor: start and cancel.
// Thread rule: stateless, so any number of tasks at once.
#pragma once

#include <taskhost/sdk.hpp>

namespace interactive {

class EchoExecutor final : public taskhost::TaskExecutor {
 public:
  taskhost::Status start(const taskhost::Task& task, taskhost::TaskSink& sink) override {
    return sink.succeed(task.input());
  }
  taskhost::Status cancel(const taskhost::Task&, taskhost::TaskSink&) override {
    return taskhost::Status::Ok();  // start already ended the task
  }
};

}  // namespace interactive
