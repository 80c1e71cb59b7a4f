#include "exec_executor.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <utility>

namespace exec_plugin {

using taskhost::Status;

ExecExecutor::~ExecExecutor() {
  std::map<th_task_ref, std::shared_ptr<ExecRun>> runs;
  {
    std::lock_guard lock(mu_);
    runs.swap(runs_);
  }
  for (auto& [ref, run] : runs) {
    run->abandon();
    run->join();
  }
}

Status ExecExecutor::start(const taskhost::Task& task, taskhost::TaskSink& sink) {
  if (task.reattach()) return Status::Failed("exec.run cannot re-attach: its program ran on a lost worker");
  ExecRequest request;
  if (Status s = parse_exec_request(task.input(), &request); !s.ok()) return s;
  std::unique_ptr<ChildProcess> child;
  if (Status s = ChildProcess::spawn(request, &child); !s.ok()) return s;
  const pid_t pid = child->pid();
  const std::string program = request.argv.front();
  auto run = std::make_shared<ExecRun>(sink, std::move(request), std::move(child));
  {
    std::lock_guard lock(mu_);
    if (!runs_.emplace(task.ref(), run).second) return Status::Failed("task attempt already started");
  }
  // Before the I/O thread exists, so "started" precedes every output delta.
  boost::json::object started;
  started["pid"] = pid;
  sink.post("started", boost::json::serialize(started));
  sink.state(taskhost::RunState::running, "running '" + program + "' as pid " + std::to_string(pid));
  run->launch();
  return Status::Ok();
}

Status ExecExecutor::cancel(const taskhost::Task& task, taskhost::TaskSink&) {
  if (auto run = find(task.ref())) run->cancel();
  return Status::Ok();  // nothing running: it already ended, which is what cancel wants
}

Status ExecExecutor::deliver(const taskhost::Task& task, const taskhost::Message& message, taskhost::TaskSink&) {
  StdinCommand command;
  if (Status s = parse_steering(message, &command); !s.ok()) return s;
  auto run = find(task.ref());
  if (!run) return Status::Failed("task '" + task.id() + "' is not running here");
  return run->send(command);
}

void ExecExecutor::release(const taskhost::Task& task) {
  if (auto run = take(task.ref())) {
    run->abandon();  // past the cancel deadline the program may still run: kill it, then join
    run->join();
  }
}

std::shared_ptr<ExecRun> ExecExecutor::find(th_task_ref ref) {
  std::lock_guard lock(mu_);
  auto it = runs_.find(ref);
  return it == runs_.end() ? nullptr : it->second;
}

std::shared_ptr<ExecRun> ExecExecutor::take(th_task_ref ref) {
  std::lock_guard lock(mu_);
  auto it = runs_.find(ref);
  if (it == runs_.end()) return nullptr;
  auto run = std::move(it->second);
  runs_.erase(it);
  return run;
}

}  // namespace exec_plugin
