// The host's log: one record per line in the text format, whatever the message holds.
#include "common/log.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace {

// What log::write puts on stderr for `message`, in the text format.
std::string logged_text(std::string_view message) {
  char path[] = "/tmp/taskhost-log-test-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  taskhost::log::set_format(taskhost::log::Format::text);
  taskhost::log::write(taskhost::log::Level::warn, message);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(path);
  return text;
}

}  // namespace

TEST_CASE("a text log record is one line: control characters in plugin text are escaped, the tab kept") {
  const std::string text = logged_text("plugin p: done\r\n2026-01-01T00:00:00.000Z ERROR forged \x1b[31mred\x7f\tend");
  INFO(text);
  CHECK(text.find('\n') == text.size() - 1);  // the record's own newline only
  CHECK(text.find('\r') == std::string::npos);
  CHECK(text.find('\x1b') == std::string::npos);
  CHECK(text.find("plugin p: done\\r\\n2026-01-01T00:00:00.000Z ERROR forged \\x1b[31mred\\x7f\tend\n") !=
        std::string::npos);
  CHECK(text.find(" WARN  ") != std::string::npos);
}
