#include "registry/kind_registry.hpp"

#include <algorithm>
#include <mutex>
#include <utility>

namespace taskhost::registry {
namespace {

// A binding change to announce once the lock is released.
using Change = std::pair<std::string, Binding>;

void drop_expired(std::vector<std::weak_ptr<const plugin::Generation>>& previous) {
  std::erase_if(previous, [](const auto& weak) { return weak.expired(); });
}

}  // namespace

Binding KindRegistry::resolve(std::string_view kind) const {
  std::shared_lock lock(mutex_);
  const auto it = kinds_.find(std::string(kind));
  return it == kinds_.end() ? Binding{} : it->second;
}

GenerationPtr KindRegistry::current(const std::filesystem::path& file) const {
  std::shared_lock lock(mutex_);
  const auto it = files_.find(file);
  return it == files_.end() ? nullptr : it->second.current;
}

std::string KindRegistry::install(GenerationPtr generation) {
  if (!generation) return "install: no generation";
  const std::filesystem::path& file = generation->source();
  std::vector<Change> changes;
  std::vector<SwitchListener> listeners;
  // References dropped here may be the last ones: they are released after the lock, because destroying a
  // generation runs plugin code (on_destroy_executor) and dlclose.
  std::vector<GenerationPtr> released;
  {
    std::unique_lock lock(mutex_);
    for (const auto& executor : generation->executors()) {
      const auto it = kinds_.find(executor->kind());
      if (it != kinds_.end() && it->second.generation->source() != file) {
        return file.string() + ": kind '" + executor->kind() + "' is already served by " +
               it->second.generation->source().string();
      }
    }
    FileEntry& entry = files_[file];
    if (entry.current == generation) return {};
    if (entry.current) {
      for (const auto& executor : entry.current->executors()) {
        if (generation->find(executor->kind()) != nullptr) continue;
        const auto it = kinds_.find(executor->kind());
        if (it == kinds_.end() || it->second.generation != entry.current) continue;
        released.push_back(std::move(it->second.generation));
        kinds_.erase(it);
        changes.emplace_back(executor->kind(), Binding{});
      }
      entry.previous.emplace_back(entry.current);
      released.push_back(std::move(entry.current));
    }
    drop_expired(entry.previous);
    for (const auto& executor : generation->executors()) {
      Binding& binding = kinds_[executor->kind()];
      released.push_back(std::move(binding.generation));
      binding = Binding{generation, executor.get()};
      changes.emplace_back(executor->kind(), binding);
    }
    entry.current = std::move(generation);
    entry.last_error.clear();
    entry.removed = false;
    listeners = listeners_;
  }
  for (const auto& [kind, now] : changes) {
    for (const auto& listener : listeners) listener(kind, now);
  }
  return {};
}

void KindRegistry::record_failure(const std::filesystem::path& file, std::string error) {
  std::unique_lock lock(mutex_);
  FileEntry& entry = files_[file];
  entry.last_error = std::move(error);
  entry.removed = false;  // the file is there again, even if it does not load
}

void KindRegistry::remove_file(const std::filesystem::path& file) {
  std::vector<Change> changes;
  std::vector<SwitchListener> listeners;
  std::vector<GenerationPtr> released;
  {
    std::unique_lock lock(mutex_);
    const auto found = files_.find(file);
    if (found == files_.end()) return;
    FileEntry& entry = found->second;
    if (entry.current) {
      for (const auto& executor : entry.current->executors()) {
        const auto it = kinds_.find(executor->kind());
        if (it == kinds_.end() || it->second.generation != entry.current) continue;
        released.push_back(std::move(it->second.generation));
        kinds_.erase(it);
        changes.emplace_back(executor->kind(), Binding{});
      }
      entry.previous.emplace_back(entry.current);
      released.push_back(std::move(entry.current));
    }
    drop_expired(entry.previous);
    entry.removed = true;
    listeners = listeners_;
  }
  for (const auto& [kind, now] : changes) {
    for (const auto& listener : listeners) listener(kind, now);
  }
}

std::vector<FileStatus> KindRegistry::files() const {
  std::vector<FileStatus> out;
  std::shared_lock lock(mutex_);
  for (const auto& [file, entry] : files_) {
    FileStatus status;
    status.file = file;
    status.last_error = entry.last_error;
    status.current = entry.current;
    for (const auto& weak : entry.previous) {
      if (GenerationPtr alive = weak.lock()) status.draining.push_back(std::move(alive));
    }
    if (entry.current) {
      status.state = "serving";
    } else if (entry.removed) {
      status.state = status.draining.empty() ? "removed" : "draining";
    } else {
      status.state = "failed";
    }
    out.push_back(std::move(status));
  }
  return out;
}

std::vector<Binding> KindRegistry::bindings() const {
  std::vector<std::pair<std::string, Binding>> sorted;
  {
    std::shared_lock lock(mutex_);
    sorted.assign(kinds_.begin(), kinds_.end());
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Binding> out;
  out.reserve(sorted.size());
  for (auto& entry : sorted) out.push_back(std::move(entry.second));
  return out;
}

void KindRegistry::on_switch(SwitchListener listener) {
  std::unique_lock lock(mutex_);
  listeners_.push_back(std::move(listener));
}

void KindRegistry::clear() {
  std::unordered_map<std::string, Binding> kinds;
  std::map<std::filesystem::path, FileEntry> files;
  {
    std::unique_lock lock(mutex_);
    kinds.swap(kinds_);
    files.swap(files_);
  }
  // Destroyed here, outside the lock: the last references run plugin destructors and dlclose. Listeners
  // are not told: clear() is for shutdown, after the router stopped.
}

void KindRegistry::track_draining(const std::filesystem::path& file, std::weak_ptr<const plugin::Generation> g) {
  std::unique_lock lock(mutex_);
  FileEntry& entry = files_[file];
  drop_expired(entry.previous);
  entry.previous.push_back(std::move(g));
}

}  // namespace taskhost::registry
