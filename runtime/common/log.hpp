// The host's log: one line per record on stderr, as text or as JSON lines, formatted with fmt.
//
//   taskhost::log::info("loaded {} from {}", kind, file);
//   taskhost::log::set_format(taskhost::log::Format::json);   // once, at startup
//
// Text lines:  2024-05-01T12:00:00.123Z INFO  loaded hello.greet from hello.so
// JSON lines:  {"ts":"2024-05-01T12:00:00.123Z","level":"info","msg":"loaded hello.greet from hello.so"}
//
// Thread rule: every function is safe from any thread; one record is written with one write call, so
// records from different threads never interleave. set_format/set_level are meant for startup.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string_view>
#include <utility>

namespace taskhost::log {

enum class Format { text, json };
enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_format(Format format);
Format format();
void set_level(Level level);  // records below `level` are dropped
Level level();

// "text"/"json" and "debug"/"info"/"warn"/"error"; nullopt for anything else.
std::optional<Format> parse_format(std::string_view name);
std::optional<Level> parse_level(std::string_view name);

// Writes one record (the message is written as is; a newline is added).
void write(Level level, std::string_view message);

template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::debug) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::info) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  if (level() <= Level::warn) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace taskhost::log
