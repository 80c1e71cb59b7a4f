#include "common/log.hpp"

#include "common/escape_controls.hpp"
#include "common/json_string.hpp"

#include <fmt/chrono.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>

namespace taskhost::log {
namespace {

std::atomic<Format> g_format{Format::text};
std::atomic<Level> g_level{Level::info};

std::string_view level_name(Level l, bool upper) {
  switch (l) {
    case Level::debug: return upper ? "DEBUG" : "debug";
    case Level::info: return upper ? "INFO " : "info";
    case Level::warn: return upper ? "WARN " : "warn";
    case Level::error: return upper ? "ERROR" : "error";
  }
  return "?";
}

// RFC 3339 UTC with milliseconds: sortable and what log shippers parse without configuration.
std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(now)),
                     static_cast<int>(ms));
}

}  // namespace

void set_format(Format format) { g_format.store(format); }
Format format() { return g_format.load(); }
void set_level(Level level) { g_level.store(level); }
Level level() { return g_level.load(); }

std::optional<Format> parse_format(std::string_view name) {
  if (name == "text") return Format::text;
  if (name == "json") return Format::json;
  return std::nullopt;
}

std::optional<Level> parse_level(std::string_view name) {
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warn") return Level::warn;
  if (name == "error") return Level::error;
  return std::nullopt;
}

void write(Level level, std::string_view message) {
  std::string line;
  line.reserve(message.size() + 48);
  if (g_format.load() == Format::json) {
    line += "{\"ts\":\"";
    line += timestamp();
    line += "\",\"level\":\"";
    line += level_name(level, false);
    line += "\",\"msg\":";
    append_json_string(line, message);
    line += "}\n";
  } else {
    line += timestamp();
    line += ' ';
    line += level_name(level, true);
    line += ' ';
    append_escaped_controls(line, message);  // one record, one line (escape_controls.hpp)
    line += '\n';
  }
  // One write(2) per record: lines from concurrent threads never interleave (stderr is unbuffered).
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace taskhost::log
