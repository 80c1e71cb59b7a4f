#include "registry/kind_registry.hpp"

#include <algorithm>
#include <mutex>
#include <set>
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
  const auto it = kinds_.find(kind);
  return it == kinds_.end() ? Binding{} : it->second;
}

std::optional<KindAdmission> KindRegistry::admission_of(std::string_view kind) const {
  std::shared_lock lock(mutex_);
  const auto it = kinds_.find(kind);
  if (it == kinds_.end()) return std::nullopt;
  return KindAdmission{it->second.executor->encoding(), it->second.plugin};
}

GenerationPtr KindRegistry::current(const std::filesystem::path& file) const {
  std::shared_lock lock(mutex_);
  const auto it = files_.find(file);
  return it == files_.end() ? nullptr : it->second.current;
}

std::string KindRegistry::install(GenerationPtr generation) {
  if (!generation) return "install: no generation";
  SwitchResult result = apply(Switch{{std::move(generation)}, {}});
  return result.refused.empty() ? std::string() : std::move(result.refused.front().error);
}

SwitchResult KindRegistry::apply(Switch change) {
  std::erase(change.install, nullptr);
  std::sort(change.install.begin(), change.install.end(),
            [](const GenerationPtr& a, const GenerationPtr& b) { return a->source() < b->source(); });
  SwitchResult result;
  std::vector<Change> changes;
  std::vector<SwitchListener> listeners;
  // References dropped here may be the last ones: they are released after the lock, because destroying a
  // generation runs plugin code (on_destroy_executor) and dlclose.
  std::vector<GenerationPtr> released;
  {
    std::unique_lock lock(mutex_);
    // A file installed in this switch is not also removed by it; installing what already serves is a no-op.
    std::set<std::filesystem::path> installing;
    std::vector<GenerationPtr> accepted;
    for (auto& g : change.install) {
      const auto it = files_.find(g->source());
      const bool serving = it != files_.end() && it->second.current == g;
      if (serving || !installing.insert(g->source()).second) {
        released.push_back(std::move(g));
      } else {
        accepted.push_back(std::move(g));
      }
    }
    std::set<std::filesystem::path> removing;
    for (const auto& file : change.remove) {
      if (files_.count(file) && !installing.count(file)) removing.insert(file);
    }

    // The final state: every file's current generation once the switch is done. Files that keep theirs
    // are "staying"; a refused candidate turns its file back into a staying one.
    std::map<std::filesystem::path, const plugin::Generation*> staying;
    for (const auto& [file, entry] : files_) {
      if (entry.current && !removing.count(file)) staying.emplace(file, entry.current.get());
    }
    for (;;) {
      std::map<std::filesystem::path, const plugin::Generation*> proposed = staying;
      for (const auto& g : accepted) proposed[g->source()] = g.get();
      std::map<std::string, std::vector<std::filesystem::path>> claims;  // kind -> files, in path order
      for (const auto& [file, g] : proposed) {
        for (const auto& executor : g->executors()) claims[executor->kind()].push_back(file);
      }
      std::set<std::filesystem::path> losers;
      const auto is_candidate = [&](const std::filesystem::path& file) {
        return std::any_of(accepted.begin(), accepted.end(), [&](const GenerationPtr& g) { return g->source() == file; });
      };
      for (const auto& [kind, files] : claims) {
        if (files.size() < 2) continue;
        const auto keeper = std::find_if(files.begin(), files.end(), [&](const auto& f) { return !is_candidate(f); });
        const std::filesystem::path& winner = keeper != files.end() ? *keeper : files.front();
        for (const auto& file : files) {
          if (file == winner || !is_candidate(file) || !losers.insert(file).second) continue;
          result.refused.push_back({file, file.string() + ": kind '" + kind + "' is already served by " + winner.string()});
        }
      }
      if (losers.empty()) break;
      for (auto& g : accepted) {
        if (losers.count(g->source())) released.push_back(std::move(g));  // refused: destroyed after the lock
      }
      std::erase(accepted, nullptr);
      for (const auto& file : losers) {
        const auto it = files_.find(file);
        if (it != files_.end() && it->second.current) staying.emplace(file, it->second.current.get());
      }
    }

    // Apply: first unbind every kind of every generation that leaves, then bind the new ones, so a kind
    // moving between two files in this switch is never refused by its own old binding.
    std::set<std::string> unbound;
    const auto retire = [&](const std::filesystem::path& file, bool replaced) {
      FileEntry& entry = files_[file];
      if (!entry.current) return;
      RetiredGeneration retired{file, entry.current->id(), entry.current->version(), {}, entry.current, replaced};
      for (const auto& executor : entry.current->executors()) {
        retired.kinds.push_back(executor->kind());
        const auto it = kinds_.find(executor->kind());
        if (it == kinds_.end() || it->second.generation != entry.current) continue;
        released.push_back(std::move(it->second.generation));
        kinds_.erase(it);
        unbound.insert(executor->kind());
      }
      entry.previous.emplace_back(entry.current);
      released.push_back(std::move(entry.current));
      result.retired.push_back(std::move(retired));
    };
    for (const auto& file : removing) {
      retire(file, false);
      FileEntry& entry = files_[file];
      drop_expired(entry.previous);
      entry.removed = true;
      entry.last_error.clear();  // about content that is gone: `plugins` showed it beside "removed" for good
    }
    for (const auto& g : accepted) retire(g->source(), true);
    std::vector<Change> bound;
    for (auto& g : accepted) {
      const uint32_t plugin =
          plugin_numbers_.try_emplace(g->name(), static_cast<uint32_t>(plugin_numbers_.size() + 1)).first->second;
      for (const auto& executor : g->executors()) {
        Binding& binding = kinds_[executor->kind()];
        released.push_back(std::move(binding.generation));
        binding = Binding{g, executor.get(), plugin};
        unbound.erase(executor->kind());
        bound.emplace_back(executor->kind(), binding);
      }
      FileEntry& entry = files_[g->source()];
      drop_expired(entry.previous);
      entry.current = std::move(g);
      entry.last_error.clear();
      entry.removed = false;
    }
    for (const auto& kind : unbound) changes.emplace_back(kind, Binding{});
    changes.insert(changes.end(), std::make_move_iterator(bound.begin()), std::make_move_iterator(bound.end()));
    listeners = listeners_;
  }
  for (const auto& [kind, now] : changes) {
    for (const auto& listener : listeners) listener(kind, now);
  }
  return result;
}

void KindRegistry::record_failure(const std::filesystem::path& file, std::string error) {
  std::unique_lock lock(mutex_);
  FileEntry& entry = files_[file];
  entry.last_error = std::move(error);
  entry.removed = false;  // the file is there again, even if it does not load
}

void KindRegistry::remove_file(const std::filesystem::path& file) { apply(Switch{{}, {file}}); }

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
  decltype(kinds_) kinds;
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
