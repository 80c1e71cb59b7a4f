// Running a shell command from a test and capturing what it printed (stdout and stderr together), for
// the tests that check built files with nm/readelf or drive cmake, pkg-config and compilers.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace sdk_test {

struct CommandResult {
  int exit_code = -1;
  std::string output;
  bool ok() const { return exit_code == 0; }
};

inline CommandResult run(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen(("( " + command + " ) 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// The names of the dynamic symbols `file` defines (nm -D --defined-only), or an error line.
inline std::vector<std::string> defined_dynamic_symbols(const std::string& file) {
  const CommandResult r = run("nm -D --defined-only '" + file + "'");
  std::vector<std::string> names;
  if (!r.ok()) return {"nm failed: " + r.output};
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    const size_t space = line.rfind(' ');
    if (!line.empty()) names.push_back(space == std::string::npos ? line : line.substr(space + 1));
  }
  return names;
}

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace sdk_test
