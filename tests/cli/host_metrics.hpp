// What a test reads from a running host's /metrics: the same numbers an operator scrapes. Tests that
// race a separate `taskhost watch` process against events wait on `taskhost_watchers` rather than on a
// sleep, which a loaded machine can outlast.
#pragma once

#include "cli_harness.hpp"

#include "api/http_client.hpp"
#include "config/endpoint.hpp"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace taskhost::clitest {

inline api::HttpTaskClient client_of(const Host& host) {
  std::string why;
  return api::HttpTaskClient(*config::parse_endpoint(host.api(), &why));
}

// The value of the one sample of `name` whose labels contain every `label` ("" when absent).
inline std::string sample(const std::string& metrics, const std::string& name,
                          const std::vector<std::string>& labels = {}) {
  for (const auto& line : lines(metrics)) {
    if (line.rfind(name, 0) != 0) continue;
    const std::string rest = line.substr(name.size());
    if (!rest.empty() && rest[0] != '{' && rest[0] != ' ') continue;  // a longer name
    bool all = true;
    for (const auto& l : labels) all = all && rest.find(l) != std::string::npos;
    if (all) return line.substr(line.rfind(' ') + 1);
  }
  return "";
}

// True once the host has `n` watch streams open (within `timeout`).
inline bool wait_for_watchers(const Host& host, int n, std::chrono::milliseconds timeout = 10s) {
  auto client = client_of(host);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (sample(client.metrics_text(), "taskhost_watchers") == std::to_string(n)) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

}  // namespace taskhost::clitest
