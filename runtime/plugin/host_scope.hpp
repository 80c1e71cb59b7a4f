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
// Both: any thread; `ctx` is the table's context, as for the sink; TH_OK when the host took the task, else
// the ref's status (ended, superseded, unknown).
struct HostHooks {
  // Task `ref` ran in a plugin process that ended (`reason`) while none of the task's calls was running:
  // it waits for the plugin's next process. Meanwhile the host holds its steering for the re-attached
  // attempt, ends it at once on a cancel, and its events say why it waits.
  th_status (*task_awaits_process)(th_host_context* ctx, th_task_ref ref, const char* reason) = nullptr;
  // The plugin runs again in a new process: the host re-attaches the waiting task there (attempt + 1, its
  // last checkpoint), or fails it naming `reason` (its kind said no, or its plugin's processes have
  // ended too often under it).
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
