#include "plugin/manifest.hpp"

#include "common/utf8.hpp"
#include "plugin/elf_image.hpp"
#include "plugin/file_bytes.hpp"

#include <taskhost/plugin.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace taskhost::plugin {
namespace {

constexpr std::string_view kHeader = "taskhost-manifest 1";

// A line as it appears in an error: printable, and short enough for one log line.
std::string quoted(std::string_view line) {
  std::string out = "\"";
  for (char c : line.substr(0, 80)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (line.size() > 80) out += "...";
  return out + "\"";
}

std::string line_error(size_t number, std::string_view line, std::string_view what) {
  return "line " + std::to_string(number) + " " + quoted(line) + ": " + std::string(what);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Names, versions and kinds travel in JSON and protobuf strings and in log lines: text, or every listing
// that shows them breaks (an invalid byte made /v1/plugins unreadable for every plugin).
bool is_text(std::string_view s) {
  return valid_utf8(s) && std::none_of(s.begin(), s.end(), [](char c) {
           return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
         });
}

bool has_space(std::string_view s) { return std::any_of(s.begin(), s.end(), is_space); }

bool edge_space(std::string_view s) { return !s.empty() && (is_space(s.front()) || is_space(s.back())); }

bool parse_uint(std::string_view s, uint32_t* out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

ManifestParse parse_manifest(std::string_view text) {
  ManifestParse result;
  if (text.empty()) {
    result.error = "empty manifest: expected first line \"" + std::string(kHeader) + "\"";
    return result;
  }
  PluginManifest m;
  std::set<std::string, std::less<>> seen_keys;
  size_t number = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++number;
    if (number == 1) {
      if (line != kHeader) {
        result.error = line_error(1, line, "expected \"" + std::string(kHeader) + "\"");
        return result;
      }
      continue;
    }
    if (line.empty()) continue;  // the text ends with a newline; blank lines carry nothing
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      result.error = line_error(number, line, "expected key=value");
      return result;
    }
    const std::string_view key = line.substr(0, eq);
    const std::string_view value = line.substr(eq + 1);
    if (has_space(key) || edge_space(value)) {
      result.error = line_error(number, line, "no spaces around '=' and at the line ends");
      return result;
    }
    // Keys this host does not know are skipped: a later manifest version may append keys.
    if (key != "abi" && key != "name" && key != "version" && key != "kinds") continue;
    if (!seen_keys.emplace(key).second) {
      result.error = line_error(number, line, "key '" + std::string(key) + "' given twice");
      return result;
    }
    if (key == "abi") {
      const size_t dot = value.find('.');
      if (dot == std::string_view::npos || !parse_uint(value.substr(0, dot), &m.abi_major) ||
          !parse_uint(value.substr(dot + 1), &m.abi_minor)) {
        result.error = line_error(number, line, "abi must be MAJOR.MINOR, e.g. 1.0");
        return result;
      }
    } else if (key == "name" || key == "version") {
      if (value.empty()) {
        result.error = line_error(number, line, std::string(key) + " must not be empty");
        return result;
      }
      if (!is_text(value)) {
        result.error = line_error(number, line, std::string(key) + " must be UTF-8 text without control characters");
        return result;
      }
      (key == "name" ? m.name : m.version) = std::string(value);
    } else {
      std::set<std::string_view> unique;
      size_t start = 0;
      while (start <= value.size()) {
        const size_t comma = std::min(value.find(',', start), value.size());
        const std::string_view kind = value.substr(start, comma - start);
        start = comma + 1;
        if (kind.empty()) {
          result.error = line_error(number, line, "kinds must be a comma-separated list of non-empty names");
          return result;
        }
        if (has_space(kind)) {
          result.error = line_error(number, line, "kind '" + utf8_sanitized(kind) +
                                                      "' has a space: kind names are written without spaces "
                                                      "(they are CLI arguments and NATS subject tokens)");
          return result;
        }
        if (!is_text(kind)) {
          result.error = line_error(number, line, "kind names must be UTF-8 text without control characters");
          return result;
        }
        if (!unique.insert(kind).second) {
          result.error = line_error(number, line, "kind '" + std::string(kind) + "' listed twice");
          return result;
        }
        m.kinds.emplace_back(kind);
      }
    }
  }
  for (const char* key : {"abi", "name", "version", "kinds"}) {
    if (!seen_keys.contains(std::string_view(key))) {
      result.error = "missing key '" + std::string(key) + "'";
      return result;
    }
  }
  result.manifest = std::move(m);
  return result;
}

bool abi_compatible(uint32_t major, uint32_t minor, std::string* why) {
  if (major == TASKHOST_ABI_MAJOR && minor <= TASKHOST_ABI_MINOR) return true;
  if (why) {
    *why = "plugin ABI " + std::to_string(major) + "." + std::to_string(minor) + "; this host accepts " +
           std::to_string(TASKHOST_ABI_MAJOR) + ".0 to " + std::to_string(TASKHOST_ABI_MAJOR) + "." +
           std::to_string(TASKHOST_ABI_MINOR);
  }
  return false;
}

Inspection inspect_image(const std::filesystem::path& file, std::string_view image) {
  Inspection result;
  result.file = file;
  const ElfImage elf = read_elf_image(image, TASKHOST_MANIFEST_SECTION);
  result.is_elf = elf.is_elf;
  for (const ElfSymbol& symbol : elf.exported) {
    result.exported_symbols.push_back(symbol.name);
    if (symbol.is_function && symbol.name == TASKHOST_ENTRY_SYMBOL) result.has_entry_point = true;
  }

  // Fill in everything readable first, so `inspect` shows it even when the file is refused; then report
  // the first reason in a fixed order: not loadable ELF, entry point, manifest, ABI.
  std::string manifest_error;
  result.has_manifest_section = elf.section.has_value();
  if (elf.section) {
    const std::string_view text = elf.section->substr(0, elf.section->find('\0'));
    ManifestParse parsed = parse_manifest(text);
    result.manifest = std::move(parsed.manifest);
    manifest_error = std::move(parsed.error);
  }
  std::string why;
  if (!elf.error.empty()) {
    why = elf.error;
  } else if (!result.has_entry_point) {
    why = "no entry point: the file does not export function '" + std::string(TASKHOST_ENTRY_SYMBOL) +
          "' (declare it with TASKHOST_PLUGIN_ENTRY)";
  } else if (!elf.section) {
    why = "no manifest: section '" + std::string(TASKHOST_MANIFEST_SECTION) +
          "' is missing (declare it with TASKHOST_MANIFEST)";
  } else if (!manifest_error.empty()) {
    why = "bad manifest: " + manifest_error;
  } else if (std::string abi_why; !abi_compatible(result.manifest->abi_major, result.manifest->abi_minor, &abi_why)) {
    why = "ABI refused: " + abi_why;
  }
  if (!why.empty()) result.error = file.string() + ": " + why;
  return result;
}

Inspection inspect_file(const std::filesystem::path& file) {
  std::string read_error;
  const std::optional<std::string> image = read_file_bytes(file, &read_error);
  if (!image) {
    Inspection result;
    result.file = file;
    result.error = file.string() + ": " + read_error;
    return result;
  }
  return inspect_image(file, *image);
}

}  // namespace taskhost::plugin
