#include "plugin/elf_image.hpp"

#include <elf.h>

#include <cstring>

namespace taskhost::plugin {
namespace {

#if defined(__x86_64__)
constexpr int kHostMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr int kHostMachine = EM_AARCH64;
#elif defined(__riscv)
constexpr int kHostMachine = EM_RISCV;
#else
constexpr int kHostMachine = EM_NONE;  // unknown build machine: the machine check is skipped
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr unsigned char kHostData = ELFDATA2LSB;
#else
constexpr unsigned char kHostData = ELFDATA2MSB;
#endif

// Copies a T out of the image at `offset` if it lies wholly inside; memcpy because the file gives no
// alignment guarantee.
template <typename T>
bool read_at(std::string_view image, uint64_t offset, T* out) {
  if (offset > image.size() || image.size() - offset < sizeof(T)) return false;
  std::memcpy(out, image.data() + offset, sizeof(T));
  return true;
}

std::optional<std::string_view> range(std::string_view image, uint64_t offset, uint64_t size) {
  if (offset > image.size() || image.size() - offset < size) return std::nullopt;
  return image.substr(offset, size);
}

// A NUL-terminated string at `offset` inside a string table; empty if out of range or unterminated.
std::string_view string_at(std::string_view table, uint64_t offset) {
  if (offset >= table.size()) return {};
  const std::string_view rest = table.substr(offset);
  const size_t end = rest.find('\0');
  return end == std::string_view::npos ? std::string_view{} : rest.substr(0, end);
}

}  // namespace

ElfImage read_elf_image(std::string_view image, std::string_view section_name) {
  ElfImage out;
  if (image.size() < EI_NIDENT || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
    out.error = "not an ELF file";
    return out;
  }
  out.is_elf = true;
  const auto* ident = reinterpret_cast<const unsigned char*>(image.data());
  if (ident[EI_CLASS] != ELFCLASS64) {
    out.error = "not a 64-bit ELF file (ELF class " + std::to_string(ident[EI_CLASS]) + "); this host loads ELF64";
    return out;
  }
  if (ident[EI_DATA] != kHostData) {
    out.error = "ELF byte order differs from this host's";
    return out;
  }
  Elf64_Ehdr eh{};
  if (!read_at(image, 0, &eh)) {
    out.error = "truncated ELF header";
    return out;
  }
  if (eh.e_type != ET_DYN) {
    out.error = "not a shared object (ELF type " + std::to_string(eh.e_type) + ")";
    return out;
  }
  if (kHostMachine != EM_NONE && eh.e_machine != kHostMachine) {
    out.error = "built for ELF machine " + std::to_string(eh.e_machine) + ", this host is machine " +
                std::to_string(kHostMachine);
    return out;
  }

  // Section header table. Counts that do not fit the header live in section 0 (ELF extended numbering).
  if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr)) {
    out.error = "corrupt ELF: no usable section header table";
    return out;
  }
  Elf64_Shdr first{};
  if (!read_at(image, eh.e_shoff, &first)) {
    out.error = "corrupt ELF: section header table lies outside the file";
    return out;
  }
  const uint64_t count = eh.e_shnum != 0 ? eh.e_shnum : first.sh_size;
  const uint64_t names_index = eh.e_shstrndx != SHN_XINDEX ? eh.e_shstrndx : first.sh_link;
  if (count == 0 || count > (image.size() - eh.e_shoff) / sizeof(Elf64_Shdr) || names_index >= count) {
    out.error = "corrupt ELF: section header table lies outside the file";
    return out;
  }
  std::vector<Elf64_Shdr> sections(count);
  for (uint64_t i = 0; i < count; ++i) read_at(image, eh.e_shoff + i * sizeof(Elf64_Shdr), &sections[i]);

  const Elf64_Shdr& names_header = sections[names_index];
  const auto names = range(image, names_header.sh_offset, names_header.sh_size);
  if (!names) {
    out.error = "corrupt ELF: section name table lies outside the file";
    return out;
  }

  for (const Elf64_Shdr& s : sections) {
    if (string_at(*names, s.sh_name) != section_name || s.sh_type == SHT_NOBITS) continue;
    out.section = range(image, s.sh_offset, s.sh_size);
    if (!out.section) {
      out.error = "corrupt ELF: section '" + std::string(section_name) + "' lies outside the file";
      return out;
    }
    break;
  }

  for (const Elf64_Shdr& s : sections) {
    if (s.sh_type != SHT_DYNSYM) continue;
    const auto symbols = range(image, s.sh_offset, s.sh_size);
    const auto strings =
        s.sh_link < count ? range(image, sections[s.sh_link].sh_offset, sections[s.sh_link].sh_size) : std::nullopt;
    if (!symbols || !strings || s.sh_entsize != sizeof(Elf64_Sym)) {
      out.error = "corrupt ELF: dynamic symbol table lies outside the file";
      return out;
    }
    const size_t n = symbols->size() / sizeof(Elf64_Sym);
    for (size_t i = 1; i < n; ++i) {  // entry 0 is the reserved null symbol
      Elf64_Sym sym{};
      std::memcpy(&sym, symbols->data() + i * sizeof(Elf64_Sym), sizeof(sym));
      const unsigned bind = ELF64_ST_BIND(sym.st_info);
      const unsigned type = ELF64_ST_TYPE(sym.st_info);
      const unsigned visibility = ELF64_ST_VISIBILITY(sym.st_other);
      const bool defined = sym.st_shndx != SHN_UNDEF;
      const bool global = bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE;
      const bool visible = visibility == STV_DEFAULT || visibility == STV_PROTECTED;
      if (!defined || !global || !visible || type == STT_SECTION || type == STT_FILE) continue;
      const std::string_view name = string_at(*strings, sym.st_name);
      if (name.empty()) continue;
      out.exported.push_back({std::string(name), type == STT_FUNC || type == STT_GNU_IFUNC});
    }
    break;  // an ELF file has at most one SHT_DYNSYM
  }
  return out;
}

}  // namespace taskhost::plugin
