#include "exec_executor.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <memory>
#include <string>
#include <utility>

namespace exec_plugin {

using taskhost::Status;

Status ExecExecutor::start(const taskhost::Task& task, taskhost::TaskSink& sink) {
  if (task.reattach()) return Status::Failed("exec.run cannot re-attach: its program ran on a lost worker");
  ExecRequest request;
  if (Status s = parse_exec_request(task.input(), &request); !s.ok()) return s;
  auto run = std::make_shared<ExecRun>(sink, std::move(request));
  if (!runs_.insert(task.ref(), run)) return Status::Failed("task attempt already started");
  return run->launch();  // failed: the host releases the attempt, which joins its (ended) I/O thread
}

Status ExecExecutor::cancel(const taskhost::Task& task, taskhost::TaskSink&) {
  if (auto run = runs_.find(task.ref())) run->cancel();
  return Status::Ok();  // nothing running: it already ended, which is what cancel wants
}

Status ExecExecutor::deliver(const taskhost::Task& task, const taskhost::Message& message, taskhost::TaskSink&) {
  StdinCommand command;
  if (Status s = parse_steering(message, &command); !s.ok()) return s;
  auto run = runs_.find(task.ref());
  if (!run) return Status::Failed("task '" + task.id() + "' is not running here");
  return run->send(command);
}

void ExecExecutor::release(const taskhost::Task& task) { runs_.release(task.ref()); }

}  // namespace exec_plugin
