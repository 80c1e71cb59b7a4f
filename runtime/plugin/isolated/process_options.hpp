// How the processes of isolated plugins (isolation = "process") are run.
#pragma once

#include <chrono>
#include <filesystem>

namespace taskhost::plugin::isolated {

struct ProcessOptions {
  std::filesystem::path program;  // taskhost-plugin-child; empty = the one next to the running executable
  // How long the plugin process may take to load the plugin and say hello; 0 = as long as it takes.
  std::chrono::milliseconds load_timeout{10'000};
  // After a crash the plugin is started again after first_backoff, doubling on every crash that follows
  // soon after, up to max_backoff.
  std::chrono::milliseconds first_backoff{100};
  std::chrono::milliseconds max_backoff{10'000};
  // A plugin call still running after this is taken as hung: the process is killed (as for a crash: the
  // task of that call fails, it is started again), so a plugin that hangs cannot hold the host's call threads, or its shutdown,
  // for good. plugin.h asks calls to return promptly. 0 = never.
  std::chrono::milliseconds call_timeout{30'000};
};

}  // namespace taskhost::plugin::isolated
