// The `taskhost` subcommands, one file each (cli/<name>.cpp). Each takes the arguments after its name and
// returns the process exit code (cli/common.hpp); bad arguments throw UsageError, client failures throw
// transport::ClientError, both printed by main as one line.
#pragma once

#include <string>
#include <vector>

namespace taskhost::cli {

using Args = std::vector<std::string>;

int serve_command(const Args& args);
int submit_command(const Args& args);
int send_command(const Args& args);
int cancel_command(const Args& args);
int status_command(const Args& args);
int watch_command(const Args& args);
int plugins_command(const Args& args);
int reload_command(const Args& args);
int inspect_command(const Args& args);
int new_plugin_cli(const Args& args);

}  // namespace taskhost::cli
