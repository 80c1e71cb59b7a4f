// `taskhost`: one binary for the host (`serve`) and every operator command.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "common/utf8.hpp"
#include "taskhost/plugin.h"

#include <iostream>
#include <string>
#include <vector>

namespace taskhost::cli {

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> table = {
      {"serve", "run the host: load plugins, serve the local API, run tasks", serve_command},
      {"submit", "submit a task of a kind (and optionally wait for its result)", submit_command},
      {"send", "send steering text/data to a running task, or answer its input request", send_command},
      {"cancel", "ask a task to stop", cancel_command},
      {"status", "show one task, or every task the host knows", status_command},
      {"watch", "follow task events live (progress bars in a terminal)", watch_command},
      {"plugins", "list plugin files: kinds, version, generation, state, last error", plugins_command},
      {"reload", "rescan the plugins directory now", reload_command},
      {"inspect", "show what a plugin file declares, without loading it", inspect_command},
      {"new-plugin", "create a new plugin project from a template", new_plugin_cli},
  };
  return table;
}

namespace {

void print_help(std::ostream& out) {
  out << "Usage: taskhost COMMAND [ARGS] [--help]\n\n"
         "Runs task plugins (.so files with the taskhost C ABI) and drives them from the command line.\n\n"
         "Commands:\n";
  for (const auto& c : subcommands()) {
    out << "  " << c.name << std::string(12 - c.name.size(), ' ') << c.summary << "\n";
  }
  out << "  --version   print the version and the plugin ABI it loads\n";
  out << "\nClient commands find the host at --api ADDR, else $TASKHOST_API, else 127.0.0.1:7411.\n"
         "Exit codes: 0 ok, 1 error, 2 bad arguments, 3 task failed, 4 task canceled (submit --wait).\n";
}

}  // namespace
}  // namespace taskhost::cli

namespace {
// Errors are one line (README): a message that brought line breaks of its own (a server's error page, a
// parser's caret under the fault) is joined, and a long one cut.
std::string one_line(std::string_view text) {
  constexpr size_t kMax = 400;
  std::string out;
  bool space = false;
  for (char ch : text) {
    if (ch == '\n' || ch == '\r' || ch == '\t') {
      space = !out.empty();
      continue;
    }
    if (space && ch != ' ') out += ' ';
    space = false;
    out += ch;
  }
  if (out.size() > kMax) {
    out = out.substr(0, taskhost::utf8_cut(out, kMax)) + "…";  // not inside a UTF-8 character
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace taskhost::cli;
  if (argc < 2) {
    std::cerr << "taskhost: missing command (see taskhost --help)\n";
    return kExitUsage;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_help(std::cout);
    return kExitOk;
  }
  if (name == "--version" || name == "version") {
    // What a bug report needs: this build, and the plugin ABI it loads.
    std::cout << "taskhost " << TASKHOST_VERSION << " (plugin ABI " << TASKHOST_ABI_MAJOR << "." << TASKHOST_ABI_MINOR
              << ")\n";
    return kExitOk;
  }
  for (const auto& c : subcommands()) {
    if (c.name != name) continue;
    const Args args(argv + 2, argv + argc);
    try {
      return c.run(args);
    } catch (const UsageError& e) {
      std::cerr << "taskhost " << name << ": " << one_line(e.what()) << " (see taskhost " << name << " --help)\n";
      return kExitUsage;
    } catch (const std::exception& e) {
      std::cerr << "taskhost " << name << ": " << one_line(e.what()) << "\n";
      return kExitError;
    }
  }
  std::cerr << "taskhost: unknown command '" << name << "' (see taskhost --help)\n";
  return kExitUsage;
}
