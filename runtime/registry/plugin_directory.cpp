#include "registry/plugin_directory.hpp"

#include "plugin/loader.hpp"

#include <algorithm>
#include <system_error>

namespace taskhost::registry {

bool is_plugin_file_name(std::string_view name) {
  return name.size() > 3 && name.front() != '.' && name.ends_with(".so");
}

PluginDirectory::PluginDirectory(std::filesystem::path dir, KindRegistry& registry, const th_host_api& host)
    : dir_(std::move(dir)), registry_(registry), host_(host) {}

void PluginDirectory::record_failure(const std::filesystem::path& file, std::string hash, bool conflict,
                                     std::string error, ScanReport& report) {
  registry_.record_failure(file, error);
  failed_[file] = Failed{std::move(hash), conflict};
  report.errors.push_back(std::move(error));
}

ScanReport PluginDirectory::scan(const ScanOptions& options) {
  ScanReport report;
  {
    std::lock_guard lock(mutex_);
    report = scan_locked(options);
  }
  std::vector<ScanListener> listeners;
  {
    std::lock_guard lock(listeners_mutex_);
    listeners = listeners_;
  }
  for (const auto& listener : listeners) listener(report);
  return report;
}

ScanReport PluginDirectory::scan_locked(const ScanOptions& options) {
  ScanReport report;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir_, ec);
  if (ec) {
    // Nothing is removed on a listing failure: a transient error must not unload every plugin.
    report.errors.push_back(dir_.string() + ": cannot list the plugins directory: " + ec.message());
    return report;
  }
  std::vector<std::filesystem::path> candidates;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) {
      report.errors.push_back(dir_.string() + ": cannot list the plugins directory: " + ec.message());
      return report;
    }
    std::error_code status_ec;
    // is_regular_file follows symlinks: a link to a plugin counts, a dangling link or a directory does not.
    if (is_plugin_file_name(it->path().filename().string()) && it->is_regular_file(status_ec)) {
      candidates.push_back(it->path());
    }
  }
  std::sort(candidates.begin(), candidates.end());  // a stable order makes conflicts resolve the same way

  // Files this directory put in the registry that are no longer there. They leave in the same switch as
  // the new files arrive, so a renamed plugin does not find its kinds still held by its old name. Paths
  // are compared as the iterator spells them (dir_ / name), which is how they were recorded.
  Switch change;
  const std::filesystem::path dir_key = (dir_ / "x").parent_path();
  const std::set<std::filesystem::path> present(candidates.begin(), candidates.end());
  for (const FileStatus& status : registry_.files()) {
    if (status.state == "removed" || status.state == "draining") continue;
    if (status.file.parent_path() != dir_key || present.contains(status.file)) continue;
    if (options.settling.contains(status.file)) continue;
    change.remove.push_back(status.file);
  }

  // Which files need a new generation: content differs from what serves, and (unless retrying) from
  // what already failed.
  struct ToLoad {
    std::filesystem::path file;
    std::string hash;
  };
  std::vector<ToLoad> to_load;
  std::vector<ToLoad> refused_before;  // refused by a kind conflict only; same content since
  for (const auto& file : candidates) {
    if (options.settling.contains(file)) continue;
    std::string why;
    std::string hash = plugin::content_hash_of(file, &why);
    if (hash.empty()) {
      record_failure(file, {}, false, std::move(why), report);
      continue;
    }
    if (const GenerationPtr current = registry_.current(file); current && current->content_hash() == hash) {
      // The serving build is the newest: a failure recorded for a version since replaced no longer applies.
      registry_.record_failure(file, {});
      failed_.erase(file);
      continue;
    }
    if (const auto failed = failed_.find(file); !options.retry_failed && failed != failed_.end() &&
                                                failed->second.hash == hash) {
      if (failed->second.conflict) refused_before.push_back({file, std::move(hash)});
      continue;
    }
    to_load.push_back({file, std::move(hash)});
  }
  if (!to_load.empty() || !change.remove.empty()) {
    to_load.insert(to_load.end(), refused_before.begin(), refused_before.end());
    std::sort(to_load.begin(), to_load.end(), [](const ToLoad& a, const ToLoad& b) { return a.file < b.file; });
  }

  std::map<std::filesystem::path, std::string> loaded_hash;
  for (const auto& [file, hash] : to_load) {
    plugin::LoadResult result = plugin::load_generation(file, next_generation_.fetch_add(1), host_);
    if (!result.generation) {
      // Keyed by the hash read just before: if the file changed in between, the next scan tries again.
      record_failure(file, hash, false, std::move(result.error), report);
      continue;
    }
    loaded_hash[file] = result.generation->content_hash();
    change.install.emplace_back(std::move(result.generation));
  }

  const std::vector<std::filesystem::path> removing = change.remove;
  SwitchResult switched = registry_.apply(std::move(change));
  std::set<std::filesystem::path> refused;
  for (auto& refusal : switched.refused) {
    refused.insert(refusal.file);
    record_failure(refusal.file, loaded_hash[refusal.file], true, std::move(refusal.error), report);
  }
  for (const auto& [file, hash] : loaded_hash) {
    if (refused.contains(file)) continue;
    failed_.erase(file);
    report.loaded.push_back(file);
  }
  for (const auto& file : removing) {
    failed_.erase(file);
    report.removed.push_back(file);
  }
  report.retired = std::move(switched.retired);
  return report;
}

std::string PluginDirectory::load_file(const std::filesystem::path& file) {
  std::lock_guard lock(mutex_);
  std::string error;
  const std::string hash = plugin::content_hash_of(file, &error);
  if (hash.empty()) {
    registry_.record_failure(file, error);
    return error;
  }
  if (const GenerationPtr current = registry_.current(file); current && current->content_hash() == hash) {
    registry_.record_failure(file, {});
    return {};
  }
  plugin::LoadResult result = plugin::load_generation(file, next_generation_.fetch_add(1), host_);
  if (!result.generation) {
    registry_.record_failure(file, result.error);
    return std::move(result.error);
  }
  error = registry_.install(GenerationPtr(std::move(result.generation)));
  if (!error.empty()) registry_.record_failure(file, error);
  return error;
}

void PluginDirectory::remove_file(const std::filesystem::path& file) {
  std::lock_guard lock(mutex_);
  registry_.remove_file(file);
}

void PluginDirectory::on_scan(ScanListener listener) {
  std::lock_guard lock(listeners_mutex_);
  listeners_.push_back(std::move(listener));
}

}  // namespace taskhost::registry
