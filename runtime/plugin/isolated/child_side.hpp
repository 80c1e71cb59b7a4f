// The plugin process's half of isolation = "process": what `taskhost-plugin-child` runs.
//
// It loads the plugin image it was handed (fd 4) with the host's own loader (the same inspection and
// descriptor validation as in-process), answers with a ChildHello, then serves PluginCall frames from the
// socket (fd 3) on a small pool of threads, each call answered by a PluginReply. The plugin's sink calls
// become SinkFrames that wait for the host's SinkReply, so the plugin sees the statuses it would
// in-process (TH_TASK_ENDED, TH_STALE_ATTEMPT...). When the host closes the socket the plugin's executors
// are destroyed (joining its threads) and the process exits.
#pragma once

namespace taskhost::plugin::isolated {

// argv: PROGRAM PLUGIN_FILE HOST_PID (the file's name in the plugins directory, for errors and log lines;
// the host's pid, to notice a host that died before the child asked to die with it).
int run_plugin_process(int argc, char** argv);

}  // namespace taskhost::plugin::isolated
