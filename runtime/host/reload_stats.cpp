#include "host/reload_stats.hpp"

namespace taskhost {
namespace {

// The file an error "FILE: reason" is about: the longest known file name it starts with.
std::string file_of(const std::string& error, const std::vector<std::filesystem::path>& known_files) {
  std::string best;
  for (const auto& f : known_files) {
    const std::string prefix = f.string() + ": ";
    if (prefix.size() > best.size() + 2 && error.compare(0, prefix.size(), prefix) == 0) best = f.string();
  }
  if (!best.empty()) return best;
  const auto colon = error.find(": ");
  return colon == std::string::npos ? error : error.substr(0, colon);
}

}  // namespace

void ReloadCounters::record_scan(const registry::ScanReport& report,
                                 const std::vector<std::filesystem::path>& known_files) {
  std::lock_guard lock(mu_);
  ++stats_.scans;
  for (const auto& f : report.loaded) ++stats_.generations_loaded[f.string()];
  for (const auto& e : report.errors) ++stats_.load_failures[file_of(e, known_files)];
}

void ReloadCounters::record_operator_reload() {
  std::lock_guard lock(mu_);
  ++stats_.operator_reloads;
}

void ReloadCounters::record_migrated(size_t tasks) {
  std::lock_guard lock(mu_);
  stats_.migrated_tasks += tasks;
}

ReloadStats ReloadCounters::snapshot() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace taskhost
