#include "registry/plugin_directory.hpp"

#include "plugin/loader.hpp"

#include <algorithm>
#include <chrono>
#include <system_error>

namespace taskhost::registry {

bool is_plugin_file_name(std::string_view name) {
  return name.size() > 3 && name.front() != '.' && name.ends_with(".so");
}

PluginDirectory::PluginDirectory(std::filesystem::path dir, KindRegistry& registry, const th_host_api& host,
                                 std::chrono::milliseconds load_timeout, plugin::IsolationPolicy isolation)
    : dir_(std::move(dir)), registry_(registry), loader_(host, load_timeout, std::move(isolation)) {}

PluginDirectory::~PluginDirectory() { releaser_->stop(); }

GenerationPtr PluginDirectory::load(const std::filesystem::path& file, std::string* error) {
  plugin::LoadResult result = loader_.load(file, next_generation_.fetch_add(1));
  if (!result.generation) *error = std::move(result.error);
  return releaser_->adopt(std::move(result.generation));
}

void PluginDirectory::record_failure(const std::filesystem::path& file, Known known, std::string error,
                                     ScanReport& report) {
  registry_.record_failure(file, error);
  known.failed = true;
  known_[file] = std::move(known);
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

  // Which files need a new generation: content that differs from what serves and (unless retrying) from
  // what already failed. A file with a new identity goes straight to loading, which hashes it.
  struct ToLoad {
    std::filesystem::path file;
    Known known;  // identity now; hash only if it was needed to decide
  };
  std::vector<ToLoad> to_load;
  std::vector<ToLoad> refused_before;  // refused by a kind conflict only; same content since
  const auto now = std::chrono::system_clock::now();
  for (const auto& file : candidates) {
    if (options.settling.contains(file)) continue;
    const std::optional<FileIdentity> identity = identify(file);
    if (!identity) continue;  // gone since the listing: the next scan removes it
    Known seen{*identity, {}, false, false};
    bool same_content = false;  // proven to be what the last scan saw
    const auto known = known_.find(file);
    if (known != known_.end() && known->second.identity == *identity) {
      if (identity->settled(now)) {
        seen = known->second;
        same_content = true;
      } else {
        // Written within the timestamp granularity: the same identity does not prove the same content.
        std::string why;
        seen.hash = plugin::content_hash_of(file, &why);
        if (seen.hash.empty()) {
          record_failure(file, std::move(seen), std::move(why), report);
          continue;
        }
        if (seen.hash == known->second.hash) {
          seen = known->second;
          same_content = true;
        }
      }
    }
    if (!seen.hash.empty()) {
      if (const GenerationPtr current = registry_.current(file); current && current->content_hash() == seen.hash) {
        // The serving build is the newest: a failure recorded for a version since replaced no longer applies.
        registry_.record_failure(file, {});
        known_[file] = Known{*identity, seen.hash, false, false};
        continue;
      }
    }
    if (same_content && seen.failed && !options.retry_failed) {
      if (seen.conflict) refused_before.push_back({file, Known{*identity, seen.hash, false, false}});
      continue;
    }
    to_load.push_back({file, Known{*identity, seen.hash, false, false}});
  }
  if (!to_load.empty() || !change.remove.empty()) {
    to_load.insert(to_load.end(), refused_before.begin(), refused_before.end());
    std::sort(to_load.begin(), to_load.end(), [](const ToLoad& a, const ToLoad& b) { return a.file < b.file; });
  }

  std::map<std::filesystem::path, Known> loading;  // files whose new generation goes into the switch
  for (auto& [file, known] : to_load) {
    std::string error;
    GenerationPtr generation = load(file, &error);
    if (!generation) {
      // Hashed here, on the failure path only, so the same content is not retried on every scan.
      if (known.hash.empty()) known.hash = plugin::content_hash_of(file, nullptr);
      record_failure(file, std::move(known), std::move(error), report);
      continue;
    }
    known.hash = generation->content_hash();
    if (const GenerationPtr current = registry_.current(file); current && current->content_hash() == known.hash) {
      // A new identity, the same bytes: nothing to switch; the unused generation goes to the releaser.
      registry_.record_failure(file, {});
      known_[file] = std::move(known);
      continue;
    }
    loading.emplace(file, std::move(known));
    change.install.emplace_back(std::move(generation));
  }

  const std::vector<std::filesystem::path> removing = change.remove;
  SwitchResult switched = registry_.apply(std::move(change));
  for (auto& refusal : switched.refused) {
    Known known = std::move(loading.at(refusal.file));
    known.conflict = true;
    loading.erase(refusal.file);
    record_failure(refusal.file, std::move(known), std::move(refusal.error), report);
  }
  for (auto& [file, known] : loading) {
    known_[file] = std::move(known);
    report.loaded.push_back(file);
  }
  for (const auto& file : removing) {
    known_.erase(file);
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
  GenerationPtr generation = load(file, &error);
  if (!generation) {
    registry_.record_failure(file, error);
    return error;
  }
  error = registry_.install(std::move(generation));
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
