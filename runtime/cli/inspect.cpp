// taskhost inspect FILE.so: what the file declares, read without loading it (no dlopen, no plugin code).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "common/path_problem.hpp"
#include "plugin/manifest.hpp"

#include <taskhost/plugin.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <iostream>

namespace taskhost::cli {

int inspect_command(const Args& args) {
  CommandLine cl("inspect", "inspect FILE.so",
                 "Shows what a plugin file declares — ELF, entry point, manifest (ABI, name, version, kinds),\n"
                 "exported symbols — and whether this host would accept it, without loading or running it.\n"
                 "Exit 0 when the file is a plugin this host can load, 1 otherwise.");
  cl.options().add_options()("file", po::value<std::string>()->required(), "the plugin file (positional)");
  cl.json_option();
  cl.positional("file", 1);
  if (!cl.parse(args)) return kExitOk;
  const std::filesystem::path file = cl.get<std::string>("file");
  if (const std::string why = path_problem(file, PathWant::regular_file); !why.empty()) {
    throw std::runtime_error(fmt::format("{}: {}", file.string(), why));
  }
  const plugin::Inspection in = plugin::inspect_file(file);
  std::string abi_note;
  bool abi_ok = false;
  if (in.manifest) abi_ok = plugin::abi_compatible(in.manifest->abi_major, in.manifest->abi_minor, &abi_note);

  if (cl.json()) {
    boost::json::object o;
    o["file"] = in.file.string();
    o["ok"] = in.ok();
    o["error"] = in.error;
    o["is_elf"] = in.is_elf;
    o["has_entry_point"] = in.has_entry_point;
    boost::json::array symbols;
    for (const auto& s : in.exported_symbols) symbols.emplace_back(s);
    o["exported_symbols"] = std::move(symbols);
    if (in.manifest) {
      boost::json::object m;
      m["abi"] = fmt::format("{}.{}", in.manifest->abi_major, in.manifest->abi_minor);
      m["abi_compatible"] = abi_ok;
      m["name"] = in.manifest->name;
      m["version"] = in.manifest->version;
      boost::json::array kinds;
      for (const auto& k : in.manifest->kinds) kinds.emplace_back(k);
      m["kinds"] = std::move(kinds);
      o["manifest"] = std::move(m);
    }
    std::cout << boost::json::serialize(o) << "\n";
  } else {
    std::cout << "file:        " << in.file.string() << "\n"
              << "elf:         " << (in.is_elf ? "yes" : "no") << "\n"
              << "entry point: " << (in.has_entry_point ? TASKHOST_ENTRY_SYMBOL : "missing") << "\n";
    if (in.manifest) {
      const auto& m = *in.manifest;
      std::string kinds;
      for (const auto& k : m.kinds) kinds += (kinds.empty() ? "" : ", ") + k;
      std::cout << "abi:         " << m.abi_major << "." << m.abi_minor
                << (abi_ok ? " (compatible)" : " (incompatible: " + abi_note + ")") << "\n"
                << "plugin:      " << m.name << " " << m.version << "\n"
                << "kinds:       " << kinds << "\n";
    } else {
      std::cout << "manifest:    " << (in.has_manifest_section ? "present but not readable (below)" : "none") << "\n";
    }
    std::string symbols;
    for (const auto& s : in.exported_symbols) symbols += (symbols.empty() ? "" : ", ") + s;
    std::cout << "exports:     " << (symbols.empty() ? "-" : symbols) << "\n";
  }
  if (!in.ok()) {
    // Some reasons name the file already (the loader's own messages do): say it once.
    const std::string named = in.file.string() + ": ";
    std::cerr << "taskhost inspect: " << (in.error.starts_with(named) ? in.error : named + in.error) << "\n";
    return kExitError;
  }
  return kExitOk;
}

}  // namespace taskhost::cli
