#include "common/failpoint.hpp"

#include "common/log.hpp"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace taskhost {
namespace {

struct Armed {
  std::mutex mu;
  std::map<std::string, long, std::less<>> remaining;  // name → firings left
  std::atomic<bool> any{false};

  Armed() {
    const char* spec = std::getenv("TASKHOST_FAILPOINTS");
    if (spec == nullptr) return;
    remaining = parse_failpoints(spec, [](std::string_view item) {
      log::error("TASKHOST_FAILPOINTS: '{}' has a count that is not a number; ignored", item);
    });
    any = !remaining.empty();
  }
};

Armed& armed() {
  static Armed a;
  return a;
}

}  // namespace

std::map<std::string, long, std::less<>> parse_failpoints(std::string_view spec,
                                                         const std::function<void(std::string_view)>& bad_item) {
  std::map<std::string, long, std::less<>> out;
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    long count = 1;
    if (eq != std::string_view::npos) {
      const std::string n(item.substr(eq + 1));
      char* end = nullptr;
      count = std::strtol(n.c_str(), &end, 10);
      if (n.empty() || *end != '\0' || count < 0) {
        bad_item(item);
        continue;
      }
    }
    out[std::string(item.substr(0, eq))] = count;
  }
  return out;
}

bool failpoint(std::string_view name) {
  Armed& a = armed();
  if (!a.any.load(std::memory_order_relaxed)) return false;
  std::lock_guard lock(a.mu);
  auto it = a.remaining.find(name);
  if (it == a.remaining.end() || it->second == 0) return false;
  --it->second;
  log::warn("failpoint {} fired ({} more armed)", name, it->second);
  return true;
}

}  // namespace taskhost
