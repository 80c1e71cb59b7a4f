// What the context of a host table handed to a plugin points at. th_host_context is opaque to plugins;
// on the host's side it says whose state the sink works on and which generation the table was given to.
//
// Every generation the plugins directory loads gets its own table (the same functions, its own scope),
// so the sink can refuse a ref of a task that another plugin, or another load of the same file, runs:
// refs are plain numbers (tasks/task_ref.hpp), and a plugin that mixes them up must not end someone
// else's task. Such a call is answered TH_UNKNOWN_TASK, as for a ref that never existed.
#pragma once

#include <taskhost/plugin.h>

#include <cstdint>
#include <string>

namespace taskhost::plugin {

// Calls for the host's own code that runs plugins (an isolated plugin's supervisor). Never handed to a
// plugin: they are not in plugin.h, and nothing a plugin is given leads to them.
struct HostHooks {
  // Task `ref` ran in a plugin process that ended while none of the task's calls was running, and the
  // plugin runs again in a new process: the host re-attaches the task there (attempt + 1, its last
  // checkpoint), or fails it naming `reason` (its kind said no, or its plugin processes have ended too
  // often under it). TH_OK when the host took it; else the ref's status (ended, superseded, unknown).
  // Any thread; `ctx` is the table's context, as for the sink.
  th_status (*reattach_lost_task)(th_host_context* ctx, th_task_ref ref, const char* reason) = nullptr;
};

struct HostScope {
  th_host_context* host = nullptr;  // the sink's own state (the router's)
  uint64_t generation = 0;          // 0: unscoped (the router's own table: tests and tools), any task
  std::string plugin;               // the plugin's name, for its log lines
  const HostHooks* hooks = nullptr;  // the router's; null in tables of tests and tools
};

inline const HostScope& host_scope(th_host_context* ctx) { return *reinterpret_cast<const HostScope*>(ctx); }

}  // namespace taskhost::plugin
