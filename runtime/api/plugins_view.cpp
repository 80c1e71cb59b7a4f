// GET /v1/plugins: every plugin file the registry knows, its serving generation, and the older
// generations still draining, each with how many active tasks it runs.
#include "api/handlers.hpp"

#include "host/host.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <map>

namespace taskhost::api {
namespace json = boost::json;

std::string plugins_json(Host& host) {
  std::map<uint64_t, uint64_t> active_by_generation;
  for (const auto& s : host.router().snapshots()) {
    if (s.state == v1::PENDING || s.state == v1::RUNNING || s.state == v1::WAITING_INPUT) {
      ++active_by_generation[s.generation];
    }
  }
  json::array files;
  for (const auto& f : host.registry().files()) {
    json::object o;
    o["file"] = f.file.string();
    o["state"] = f.state;
    o["last_error"] = f.last_error;
    json::array kinds;
    if (f.current) {
      o["plugin"] = f.current->name();
      o["version"] = f.current->version();
      o["generation"] = f.current->id();
      o["active_tasks"] = active_by_generation[f.current->id()];
      for (const auto& e : f.current->executors()) kinds.emplace_back(e->kind());
      if (const auto process = f.current->process()) {
        o["isolation"] = "process";
        o["pid"] = process->pid;  // -1 while it is down
        o["process_restarts"] = process->restarts;
        if (!process->down.empty()) o["process_down"] = process->down;
      } else {
        o["isolation"] = "in_process";
      }
    } else {
      o["plugin"] = "";
      o["version"] = "";
      o["generation"] = 0;
      o["active_tasks"] = 0;
    }
    o["kinds"] = std::move(kinds);
    json::array draining;
    for (const auto& g : f.draining) {
      if (!g) continue;
      json::object d;
      d["generation"] = g->id();
      d["version"] = g->version();
      d["active_tasks"] = active_by_generation[g->id()];
      // An isolated one drains in its own process, until its last task ends: the operator may want it.
      if (const auto process = g->process()) d["pid"] = process->pid;
      draining.emplace_back(std::move(d));
    }
    o["draining"] = std::move(draining);
    files.emplace_back(std::move(o));
  }
  json::object out;
  out["plugins_dir"] = host.plugins().path().string();
  out["plugins"] = std::move(files);
  return json::serialize(out);
}

}  // namespace taskhost::api
