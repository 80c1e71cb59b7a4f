#include "registry/plugin_directory.hpp"

#include "plugin/loader.hpp"

#include <algorithm>
#include <set>
#include <system_error>

namespace taskhost::registry {
namespace {

// `name.so`, not hidden: editors and installers write `.name.so.tmp` or `name.so.part` and rename it into
// place, and a half-written file must never be loaded.
bool is_plugin_file_name(const std::string& name) {
  return name.size() > 3 && name.front() != '.' && name.ends_with(".so");
}

}  // namespace

PluginDirectory::PluginDirectory(std::filesystem::path dir, KindRegistry& registry, const th_host_api& host)
    : dir_(std::move(dir)), registry_(registry), host_(host) {}

PluginDirectory::Outcome PluginDirectory::load_locked(const std::filesystem::path& file, std::string* error) {
  std::string why;
  const std::string hash = plugin::content_hash_of(file, &why);
  if (hash.empty()) {
    registry_.record_failure(file, why);
    *error = why;
    return Outcome::failed;
  }
  if (const GenerationPtr current = registry_.current(file); current && current->content_hash() == hash) {
    // The serving build is the newest: a failure recorded for a version since replaced no longer applies.
    registry_.record_failure(file, {});
    return Outcome::unchanged;
  }
  plugin::LoadResult result = plugin::load_generation(file, next_generation_.fetch_add(1), host_);
  if (!result.generation) {
    registry_.record_failure(file, result.error);
    *error = std::move(result.error);
    return Outcome::failed;
  }
  why = registry_.install(GenerationPtr(std::move(result.generation)));
  if (!why.empty()) {
    registry_.record_failure(file, why);
    *error = std::move(why);
    return Outcome::failed;
  }
  return Outcome::loaded;
}

ScanReport PluginDirectory::scan() {
  std::lock_guard lock(mutex_);
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

  // Files this directory put in the registry that are no longer there, removed BEFORE loading: a
  // renamed plugin must not find its kinds still held by its old name. Paths are compared as the
  // iterator spells them (dir_ / name), which is how they were recorded.
  const std::filesystem::path dir_key = (dir_ / "x").parent_path();
  const std::set<std::filesystem::path> present(candidates.begin(), candidates.end());
  for (const FileStatus& status : registry_.files()) {
    if (status.state == "removed" || status.state == "draining") continue;
    if (status.file.parent_path() != dir_key || present.contains(status.file)) continue;
    registry_.remove_file(status.file);
    report.removed.push_back(status.file);
  }

  for (const auto& file : candidates) {
    std::string error;
    switch (load_locked(file, &error)) {
      case Outcome::loaded:
        report.loaded.push_back(file);
        break;
      case Outcome::failed:
        report.errors.push_back(std::move(error));
        break;
      case Outcome::unchanged:
        break;
    }
  }
  return report;
}

std::string PluginDirectory::load_file(const std::filesystem::path& file) {
  std::lock_guard lock(mutex_);
  std::string error;
  load_locked(file, &error);
  return error;
}

void PluginDirectory::remove_file(const std::filesystem::path& file) {
  std::lock_guard lock(mutex_);
  registry_.remove_file(file);
}

}  // namespace taskhost::registry
