// taskhost status [ID]
#include "api/handlers.hpp"
#include "api/http_client.hpp"
#include "api/json.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/format.hpp"

#include <boost/json.hpp>
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
  if (s.output_omitted_bytes() > 0) {
    return fmt::format("output of {} bytes, left out of listings (taskhost status {})", s.output_omitted_bytes(),
                       shell_word(s.task_id()));
  }
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
  CommandLine cl("status", "status [ID] [--limit N [--after ID]]",
                 "Shows task ID in detail, or a table of every task the host knows, oldest first.\n"
                 "With --limit, one page of N tasks (after task --after); the next page's command is printed.\n"
                 "With --nats, the table lists the deployment's unfinished tasks (queued or running): finished\n"
                 "ones are kept as their completions, which `status ID` reads.");
  cl.options().add_options()
      ("id", po::value<std::string>(), "the task id (positional, optional)")
      ("limit", po::value<size_t>()->value_name("N"), "list at most N tasks (one page, 1..1000; local API only)")
      ("after", po::value<std::string>()->value_name("ID"), "with --limit: the page after task ID");
  cl.client_options(true);
  cl.positional("id", 1);
  if (!cl.parse(args)) return kExitOk;
  if (cl.has("id") && (cl.has("limit") || cl.has("after"))) throw UsageError("--limit and --after list tasks; not with an ID");
  if (cl.has("after") && !cl.has("limit")) throw UsageError("--after needs --limit");
  if (cl.has("id")) {
    const auto s = make_client(cl)->status(cl.get<std::string>("id"));
    if (cl.json()) print_json(s);
    else print_one(s);
    return kExitOk;
  }
  v1::TaskStatusList list;
  std::string next_after;
  if (cl.has("limit")) {
    const size_t limit = cl.get<size_t>("limit");
    if (limit < 1 || limit > api::kMaxListLimit) throw UsageError(fmt::format("--limit must be from 1 to {}", api::kMaxListLimit));
    auto page = make_http_client(cl)->list_page(limit, cl.has("after") ? cl.get<std::string>("after") : std::string());
    list = std::move(page.tasks);
    next_after = std::move(page.next_after);
  } else {
    list = make_client(cl)->list();  // every page
  }
  if (cl.json()) {
    boost::json::object out = api::to_json_value(list).as_object();
    if (!out.contains("tasks")) out["tasks"] = boost::json::array();  // protobuf's JSON leaves an empty list out
    // A page says where the next one starts, as the text form's "more:" line does; absent on the last.
    if (!next_after.empty()) out["next_after"] = next_after;
    std::cout << boost::json::serialize(out) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"TASK", "KIND", "STATE", "ATTEMPT", "PROGRESS", "DETAIL"}};
  for (const auto& s : list.tasks()) {
    rows.push_back({s.task_id(), s.kind(), state_name(s.state()), std::to_string(s.attempt()),
                    s.has_progress() ? progress_text(s.progress()) : "", summary(s)});
  }
  print_table(std::cout, rows);
  if (!next_after.empty()) {
    // Pasted into a shell as printed: the id quoted for it, and "=" before one that looks like an option.
    const char* after = next_after.front() == '-' ? " --after=" : " --after ";
    std::cout << "more: taskhost status --limit " << cl.get<size_t>("limit") << after << shell_word(next_after) << "\n";
  }
  return kExitOk;
}

}  // namespace taskhost::cli
