// Reading a plugin's manifest (plugin.h's text in section TASKHOST_MANIFEST_SECTION) straight from an ELF
// file, without loading it, so the test kit can check the manifest against the descriptor the way the
// host does. 64-bit little-endian ELF only (what the host runs). Not part of the author's API.
// Thread rule: pure functions over their arguments.
#pragma once

#include <elf.h>
#include <taskhost/plugin.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::internal {

struct ManifestFields {
  uint32_t abi_major = 0;
  uint32_t abi_minor = 0;
  std::string name;
  std::string version;
  std::vector<std::string> kinds;
};

// The manifest section's bytes (one or more NUL-terminated manifests: an executable that links several
// plugins carries one each), or nullopt when the image is not ELF64 or has no such section.
inline std::optional<std::string> manifest_section(std::string_view image) {
  Elf64_Ehdr eh;
  if (image.size() < sizeof(eh)) return std::nullopt;
  std::memcpy(&eh, image.data(), sizeof(eh));
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_shentsize != sizeof(Elf64_Shdr)) {
    return std::nullopt;
  }
  auto header = [&](size_t i) -> std::optional<Elf64_Shdr> {
    const uint64_t at = eh.e_shoff + i * sizeof(Elf64_Shdr);
    if (at + sizeof(Elf64_Shdr) > image.size()) return std::nullopt;
    Elf64_Shdr sh;
    std::memcpy(&sh, image.data() + at, sizeof(sh));
    return sh;
  };
  const auto names = header(eh.e_shstrndx);
  if (!names || names->sh_offset + names->sh_size > image.size()) return std::nullopt;
  const std::string_view strtab = image.substr(names->sh_offset, names->sh_size);
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    const auto sh = header(i);
    if (!sh || sh->sh_name >= strtab.size()) continue;
    const std::string_view name = strtab.substr(sh->sh_name, strtab.find('\0', sh->sh_name) - sh->sh_name);
    if (name != TASKHOST_MANIFEST_SECTION || sh->sh_type == SHT_NOBITS) continue;
    if (sh->sh_offset + sh->sh_size > image.size()) return std::nullopt;
    return std::string(image.substr(sh->sh_offset, sh->sh_size));
  }
  return std::nullopt;
}

// Every manifest text in `path`'s manifest section (empty when the file has none).
inline std::vector<std::string> manifests_of_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  const std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  const std::optional<std::string> section = manifest_section(image);
  if (!section) return out;
  std::istringstream parts(*section);
  for (std::string text; std::getline(parts, text, '\0');) {
    if (!text.empty()) out.push_back(text);
  }
  return out;
}

// Parses the manifest text; on failure returns nullopt and sets `error`.
inline std::optional<ManifestFields> parse_manifest_text(std::string_view text, std::string* error) {
  ManifestFields m;
  std::istringstream lines{std::string(text)};
  std::string line;
  if (!std::getline(lines, line) || line != "taskhost-manifest 1") {
    *error = "manifest does not start with \"taskhost-manifest 1\"";
    return std::nullopt;
  }
  bool abi = false, name = false, version = false, kinds = false;
  while (std::getline(lines, line)) {
    const size_t eq = line.find('=');
    if (line.empty() || eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "abi") {
      abi = std::sscanf(value.c_str(), "%u.%u", &m.abi_major, &m.abi_minor) == 2;
    } else if (key == "name") {
      m.name = value, name = true;
    } else if (key == "version") {
      m.version = value, version = true;
    } else if (key == "kinds") {
      std::istringstream list(value);
      for (std::string kind; std::getline(list, kind, ',');) m.kinds.push_back(kind);
      kinds = true;
    }
  }
  if (!abi || !name || !version || !kinds) {
    *error = "manifest lacks one of abi=, name=, version=, kinds=";
    return std::nullopt;
  }
  return m;
}

}  // namespace taskhost::internal
