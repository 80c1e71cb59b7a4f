// taskhost submit KIND [--input JSON | --input @FILE] [--id ID] [--wait [--timeout SECS]]
#include "api/json.hpp"
#include "common/json_string.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/format.hpp"
#include "transport/task_id.hpp"

#include <boost/json/serialize.hpp>

#include <fmt/format.h>

#include <chrono>
#include <iostream>

namespace taskhost::cli {

int submit_command(const Args& args) {
  CommandLine cl("submit", "submit KIND [--input JSON|@FILE] [--id ID] [--wait [--timeout SECS]]",
                 "Submits a task of KIND and prints its id. With --wait, waits for it to end and prints its\n"
                 "result: exit 0 when it succeeded, 3 when it failed, 4 when it was canceled.");
  cl.options().add_options()
      ("kind", po::value<std::string>()->required(), "the task kind (positional)")
      ("input,i", po::value<std::string>()->value_name("JSON")->default_value("{}"),
       "the task's input: JSON text, @FILE, or @- for stdin")
      ("id", po::value<std::string>()->value_name("ID"), "the task id (default: a new UUID)")
      ("wait,w", "wait for the task to end and print its result")
      ("timeout", po::value<long long>()->value_name("SECS"),
       "with --wait: give up after SECS seconds (0, the default: no limit)");
  cl.client_options(true);
  cl.positional("kind", 1);
  if (!cl.parse(args)) return kExitOk;
  const std::chrono::seconds timeout = timeout_flag(cl);
  if (cl.has("timeout") && !cl.has("wait")) throw UsageError("--timeout needs --wait");

  v1::TaskAssignment a;
  if (cl.has("id")) {
    // An empty one (a script's unset variable) would silently get a new UUID: a second run, not that task.
    if (cl.get<std::string>("id").empty()) throw UsageError("--id is empty; leave it out for a new UUID");
    a.set_task_id(cl.get<std::string>("id"));
    if (auto why = transport::task_id_problem(a.task_id()); !why.empty()) throw UsageError("--id " + why);
  }
  auto* exec = a.mutable_execute();
  exec->set_component_id(cl.get<std::string>("kind"));
  exec->set_attempt(1);
  const std::string input = json_argument(cl.get<std::string>("input"), "--input");
  if (auto why = api::from_json(input, *exec->mutable_input())) throw UsageError("--input: " + *why);

  auto client = make_client(cl);
  const auto submitted = client->submit_task(a);
  const std::string& id = submitted.task_id;
  // Idempotent by design (a retried submit must not run twice), but not silently: a caller who meant a new
  // task with a new input learns that this input was not used.
  if (submitted.existing) {
    std::cerr << "taskhost: task '" << id << "' was submitted before; this is that task (nothing new was submitted)\n";
  }
  if (!cl.has("wait")) {
    if (cl.json()) {
      std::string line = "{\"task_id\":";
      append_json_string(line, id);  // an id may hold quotes or backslashes
      if (submitted.existing) line += ",\"duplicate\":true";
      std::cout << line << "}\n";
    } else {
      std::cout << id << "\n";
    }
    return kExitOk;
  }
  if (!cl.json()) std::cerr << id << "\n";  // the id on stderr keeps stdout for the result
  const auto completion = client->wait(id, timeout);
  if (cl.json() && submitted.existing) {
    boost::json::value out = api::to_json_value(completion);
    out.as_object()["duplicate"] = true;  // as without --wait: a script learns the result is the earlier task's
    std::cout << boost::json::serialize(out) << "\n";
  } else if (cl.json()) {
    print_json(completion);
  } else if (completion.state() == v1::SUCCEEDED && completion.has_output()) {
    std::cout << value_text(completion.output()) << "\n";
  } else {
    std::cout << completion_text(completion) << "\n";
  }
  switch (completion.state()) {
    case v1::SUCCEEDED: return kExitOk;
    case v1::CANCELED: return kExitTaskCanceled;
    default: return kExitTaskFailed;
  }
}

}  // namespace taskhost::cli
