// `taskhost new-plugin NAME [--lang c|cpp] [--dir DIR]`: writes a ready-to-build plugin project that uses
// the installed SDK (find_package(TaskhostPluginSDK) + taskhost_add_plugin), so a plugin author starts
// from something that builds and loads.
//
// Thread rule: none (a CLI command). Ownership: writes only below `dest`, which must not exist or be empty.
#pragma once

#include <filesystem>
#include <ostream>
#include <string>

namespace taskhost::cli {

// `name`: lower-case letters, digits, '-' and '_', starting with a letter (it becomes the file name
// NAME.so, the CMake target and the kind prefix "NAME.echo"). `lang`: "c" or "cpp".
// Writes CMakeLists.txt, src/NAME.c(pp), README.md (and for cpp a test driving the plugin through the
// SDK's test kit) into `dest`. Reports what it wrote on `out`, errors on `err`.
// Returns 0 on success, 1 if `dest` is unusable or a write failed, 2 for a bad name or language.
int new_plugin_command(const std::string& name, const std::string& lang, const std::filesystem::path& dest,
                       std::ostream& out, std::ostream& err);

}  // namespace taskhost::cli
