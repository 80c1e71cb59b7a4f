// What a plugin file declares about itself, read from its ELF section without running any of its code
// (lessons.md rule 1), plus the dry inspection behind `taskhost inspect FILE.so`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace taskhost::plugin {

struct PluginManifest {
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
  std::string name;
  std::string version;
  std::vector<std::string> kinds;
};

// Parses the manifest text (format in plugin.h). Returns an error naming the bad line on failure.
struct ManifestParse {
  std::optional<PluginManifest> manifest;
  std::string error;
};
ManifestParse parse_manifest(std::string_view text);

// Everything knowable about a file without loading it.
struct Inspection {
  std::filesystem::path file;
  bool is_elf = false;
  bool has_entry_point = false;              // exports TASKHOST_ENTRY_SYMBOL
  std::vector<std::string> exported_symbols; // dynamic symbols defined by the file
  bool has_manifest_section = false;         // present, whether or not it parses (`manifest` is then empty)
  std::optional<PluginManifest> manifest;
  std::string error;                         // first reason this file cannot be a plugin; empty if none
  bool ok() const { return error.empty(); }
};

// Reads `file` (or an in-memory image of it) without dlopen. Never runs plugin code.
Inspection inspect_file(const std::filesystem::path& file);
Inspection inspect_image(const std::filesystem::path& file, std::string_view image);

// Whether the host accepts a plugin built for `major.minor`; if not, `why` says which versions it accepts.
bool abi_compatible(uint32_t major, uint32_t minor, std::string* why);

}  // namespace taskhost::plugin
