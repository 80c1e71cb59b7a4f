// taskhost plugins   and   taskhost reload
#include "api/http_client.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/format.hpp"
#ifdef TASKHOST_WITH_NATS
#include "cli/serve_nats.hpp"
#endif

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <iostream>

namespace taskhost::cli {
namespace json = boost::json;

namespace {

json::object parse_object(const std::string& text, const char* what) {
  json::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) throw transport::ClientError(std::string("unexpected ") + what + " reply from the API");
  return std::move(v.as_object());
}

std::string str(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  if (!v) return {};
  if (v->is_string()) return std::string(v->as_string());
  return json::serialize(*v);
}

// "host" for a plugin in the host's own process; "pid N" for one in a process of its own (isolation =
// "process"), "restarting" while that process is down, and how often it was started again.
std::string runs_in(const json::object& plugin) {
  const std::string isolation = str(plugin, "isolation");
  if (isolation.empty()) return "";  // not serving
  if (isolation != "process") return "host";
  const int64_t pid = plugin.at("pid").to_number<int64_t>();
  const int64_t restarts = plugin.at("process_restarts").to_number<int64_t>();
  std::string text = pid > 0 ? "pid " + std::to_string(pid) : "restarting";
  if (restarts > 0) text += " (" + std::to_string(restarts) + " restart" + (restarts == 1 ? ")" : "s)");
  return text;
}

}  // namespace

int plugins_command(const Args& args) {
  CommandLine cl("plugins", "plugins",
                 "Lists every plugin file in the host's plugins directory: its kinds, plugin version,\n"
                 "generation, state, active tasks, older generations still draining, and last load error.\n"
                 "With --nats: every live host of the deployment, with its worker id and loaded kinds.");
  cl.client_options(true);
  if (!cl.parse(args)) return kExitOk;
#ifdef TASKHOST_WITH_NATS
  // Over NATS there is no plugins directory to list: every live host answers discovery with its kinds.
  if (cl.has("nats")) return plugins_over_nats(nats_config(cl), cl.get<std::string>("nats"), cl.json());
#endif
  const std::string body = make_http_client(cl)->plugins_json();
  if (cl.json()) {
    std::cout << body << "\n";
    return kExitOk;
  }
  const auto root = parse_object(body, "plugins");
  std::vector<std::vector<std::string>> rows = {
      {"FILE", "STATE", "PLUGIN", "VERSION", "GEN", "KINDS", "ACTIVE", "RUNS IN", "ERROR"}};
  std::vector<std::string> draining_lines;
  for (const auto& v : root.at("plugins").as_array()) {
    const auto& p = v.as_object();
    std::string kinds;
    for (const auto& k : p.at("kinds").as_array()) kinds += (kinds.empty() ? "" : ",") + std::string(k.as_string());
    rows.push_back({str(p, "file"), str(p, "state"), str(p, "plugin"), str(p, "version"), str(p, "generation"), kinds,
                    str(p, "active_tasks"), runs_in(p), str(p, "last_error")});
    for (const auto& d : p.at("draining").as_array()) {
      const auto& g = d.as_object();
      const auto* pid = g.if_contains("pid");
      const bool running = pid != nullptr && pid->is_number() && pid->to_number<int64_t>() > 0;
      draining_lines.push_back("  " + str(p, "file") + ": generation " + str(g, "generation") + " (" + str(g, "version") +
                               ") draining, " + str(g, "active_tasks") + " active task(s)" +
                               (running ? ", in pid " + str(g, "pid") : ""));
    }
  }
  print_table(std::cout, rows);
  for (const auto& l : draining_lines) std::cout << l << "\n";
  return kExitOk;
}

int reload_command(const Args& args) {
  CommandLine cl("reload", "reload [--migrate]",
                 "Rescans the host's plugins directory now (as SIGHUP does): new and changed files load as a\n"
                 "new generation, removed files stop taking tasks, failures leave the previous version serving.\n"
                 "With --migrate, running tasks that can re-attach move to the current generation of their kind\n"
                 "(restarted from their last checkpoint, attempt + 1) instead of finishing on the old one.\n"
                 "Exits 1 when a file failed to load (its previous version, if any, keeps serving).");
  cl.options().add_options()("migrate", "move re-attachable running tasks to the new generations");
  cl.client_options(true);
  if (!cl.parse(args)) return kExitOk;
  const std::string body = make_http_client(cl)->reload_json(cl.has("migrate"));
  const auto root = parse_object(body, "reload");
  const int exit_code = root.at("errors").as_array().empty() ? kExitOk : kExitError;
  if (cl.json()) {
    std::cout << body << "\n";
    return exit_code;
  }
  size_t changes = 0;
  // std::string_view: a json::string streams as JSON, quotes and escapes included.
  for (const auto& f : root.at("loaded").as_array()) ++changes, std::cout << "loaded   " << std::string_view(f.as_string()) << "\n";
  for (const auto& f : root.at("removed").as_array()) ++changes, std::cout << "removed  " << std::string_view(f.as_string()) << "\n";
  for (const auto& e : root.at("errors").as_array()) ++changes, std::cout << "failed   " << std::string_view(e.as_string()) << "\n";
  if (const auto* moved = root.if_contains("migrated"); moved && moved->is_number() && moved->to_number<int64_t>() > 0) {
    ++changes;
    std::cout << "moved    " << moved->to_number<int64_t>() << " running task(s) to the current generations\n";
  }
  if (changes == 0) std::cout << "no changes\n";
  return exit_code;
}

}  // namespace taskhost::cli
