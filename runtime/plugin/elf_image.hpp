// A read-only view of an ELF64 shared object in memory: its sections and its exported dynamic symbols,
// parsed from the bytes alone. This is how the host learns what a plugin file is without dlopen, i.e.
// without running any of its static constructors.
//
// Thread rule: pure function, safe from any thread. Ownership: `section` views point into the caller's
// image and are valid only while it is.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::plugin {

struct ElfSymbol {
  std::string name;
  bool is_function = false;
};

struct ElfImage {
  bool is_elf = false;                      // the file starts with the ELF magic
  std::string error;                        // why it cannot be read as a shared object here; empty if it can
  std::vector<ElfSymbol> exported;          // defined, global or weak, default or protected visibility
  std::optional<std::string_view> section;  // contents of the requested section, if present
};

// Parses `image` as an ELF64 shared object for this host's machine and byte order, and returns the
// contents of the section named `section_name` if there is one. Every offset is bounds-checked: a
// truncated or hostile file gives an error, never a read outside `image`.
ElfImage read_elf_image(std::string_view image, std::string_view section_name);

}  // namespace taskhost::plugin
