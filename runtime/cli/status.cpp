// taskhost status [ID]
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/format.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <iostream>

namespace taskhost::cli {
namespace {

std::string when(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", fmt::localtime(t));
}

// The short "what is it doing / how did it end" column.
std::string summary(const v1::TaskStatus& s) {
  if (s.has_completion()) {
    const auto text = completion_text(s.completion());
    const auto colon = text.find(": ");
    return colon == std::string::npos ? "" : text.substr(colon + 2);
  }
  if (!s.pending_request_id().empty()) return "asks [" + s.pending_request_id() + "]: " + s.pending_prompt();
  return s.detail();
}

void print_one(const v1::TaskStatus& s) {
  std::vector<std::vector<std::string>> rows = {
      {"task", s.task_id()},
      {"kind", s.kind()},
      {"state", state_name(s.state())},
      {"attempt", std::to_string(s.attempt())},
  };
  if (!s.detail().empty()) rows.push_back({"detail", s.detail()});
  if (s.has_progress()) rows.push_back({"progress", progress_text(s.progress())});
  if (!s.pending_request_id().empty()) rows.push_back({"input request", "[" + s.pending_request_id() + "] " + s.pending_prompt()});
  if (s.generation() != 0) rows.push_back({"plugin", fmt::format("{} (generation {})", s.plugin_version(), s.generation())});
  if (!s.worker_id().empty()) rows.push_back({"worker", s.worker_id()});
  rows.push_back({"created", when(s.created_unix_ms())});
  rows.push_back({"updated", when(s.updated_unix_ms())});
  if (s.has_completion()) rows.push_back({"result", completion_text(s.completion())});
  for (auto& r : rows) r[0] += ":";
  print_table(std::cout, rows);
}

}  // namespace

int status_command(const Args& args) {
  CommandLine cl("status", "status [ID]", "Shows task ID in detail, or a table of every task the host knows.");
  cl.options().add_options()("id", po::value<std::string>(), "the task id (positional, optional)");
  cl.client_options(true);
  cl.positional("id", 1);
  if (!cl.parse(args)) return kExitOk;
  auto client = make_client(cl);
  if (cl.has("id")) {
    const auto s = client->status(cl.get<std::string>("id"));
    if (cl.json()) print_json(s);
    else print_one(s);
    return kExitOk;
  }
  const auto list = client->list();
  if (cl.json()) {
    print_json(list);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"TASK", "KIND", "STATE", "ATTEMPT", "PROGRESS", "DETAIL"}};
  for (const auto& s : list.tasks()) {
    rows.push_back({s.task_id(), s.kind(), state_name(s.state()), std::to_string(s.attempt()),
                    s.has_progress() ? progress_text(s.progress()) : "", summary(s)});
  }
  print_table(std::cout, rows);
  return kExitOk;
}

}  // namespace taskhost::cli
