// taskhost new-plugin NAME [--lang c|cpp] [--dir DIR]: the command line around cli/new_plugin.hpp.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/new_plugin.hpp"

#include <filesystem>
#include <iostream>

namespace taskhost::cli {

int new_plugin_cli(const Args& args) {
  CommandLine cl("new-plugin", "new-plugin NAME [--lang c|cpp] [--dir DIR]",
                 "Writes a ready-to-build plugin project (CMake, source, README) for a plugin NAME into DIR.");
  cl.options().add_options()
      ("name", po::value<std::string>()->required(), "plugin name: lower-case letters, digits, '-', '_' (positional)")
      ("lang", po::value<std::string>()->value_name("c|cpp")->default_value("cpp"), "plugin language")
      ("dir", po::value<std::string>()->value_name("DIR"), "where to write it (default: ./NAME); must not exist or be empty");
  cl.positional("name", 1);
  if (!cl.parse(args)) return kExitOk;
  const std::string name = cl.get<std::string>("name");
  const std::filesystem::path dir = cl.has("dir") ? std::filesystem::path(cl.get<std::string>("dir")) : std::filesystem::path(name);
  return new_plugin_command(name, cl.get<std::string>("lang"), dir, std::cout, std::cerr);
}

}  // namespace taskhost::cli
