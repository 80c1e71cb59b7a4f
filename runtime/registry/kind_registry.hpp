// The kind registry: which generation serves each kind right now, and the state of every plugin file.
//
// Switching is atomic per file: installing a generation re-points all of its kinds at once, under one
// lock, so an assignment sees either the old generation or the new one, never a mix. Running tasks keep
// the shared_ptr of the generation that started them, which is what keeps old code mapped until the
// last task and the last in-flight call are done.
//
// Thread rule: every method is safe from any thread. resolve() is on the hot path: one shared lock and a
// hash lookup.
#pragma once

#include "plugin/generation.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace taskhost::registry {

using GenerationPtr = std::shared_ptr<const plugin::Generation>;

// What serves a kind: the generation (keeps code mapped) and its executor for that kind.
struct Binding {
  GenerationPtr generation;
  const plugin::KindExecutor* executor = nullptr;
  // The registry's number for the plugin (its descriptor name) serving the kind, from 1; stable for the
  // registry's life. The router gives each plugin, not each kind, its share of the call pool.
  uint32_t plugin = 0;
  explicit operator bool() const { return executor != nullptr; }
};

// What admission needs to know of a kind: no Binding copied (whose shared count the pool threads move).
struct KindAdmission {
  th_encoding encoding{};
  uint32_t plugin = 0;  // Binding::plugin
};

// A generation that stopped taking new tasks in a switch: its file got a newer generation or was removed.
// Holds only a weak reference: the tasks still running on it, not this record, decide how long it lives.
struct RetiredGeneration {
  std::filesystem::path file;
  uint64_t id = 0;
  std::string version;
  std::vector<std::string> kinds;
  std::weak_ptr<const plugin::Generation> generation;
  bool replaced = false;  // true: the file serves a newer generation now; false: the file was removed
};

// One switch: new generations to install (each becomes the current one of its source file) and files to
// remove, applied together.
struct Switch {
  std::vector<GenerationPtr> install;
  std::vector<std::filesystem::path> remove;
};

struct SwitchResult {
  struct Refusal {
    std::filesystem::path file;
    std::string error;  // "FILE: kind 'K' is already served by OTHER"
  };
  std::vector<Refusal> refused;            // generations not installed; their files keep what they had
  std::vector<RetiredGeneration> retired;  // generations that stopped taking new tasks
};

// One plugin file as `taskhost plugins` shows it.
struct FileStatus {
  std::filesystem::path file;
  std::string state;          // "serving", "failed", "removed", "draining"
  std::string last_error;     // why the newest attempt to load it failed; empty if it did not
  GenerationPtr current;      // the generation serving new tasks, or null
  std::vector<GenerationPtr> draining;  // older generations still referenced by running tasks
};

class KindRegistry {
 public:
  // Current binding of `kind`, or an empty Binding.
  Binding resolve(std::string_view kind) const;
  // The payload encoding of `kind`'s current executor and its plugin's number, or nothing if no plugin
  // serves it. For admission, which needs no more.
  std::optional<KindAdmission> admission_of(std::string_view kind) const;

  // The generation currently serving new tasks for `file`, or null (never loaded, failed, removed).
  GenerationPtr current(const std::filesystem::path& file) const;

  // Installs `generation` as the current one for its source file. Refused (returns an error naming both
  // files) when one of its kinds is served by a different file; then nothing changes and the file's
  // previous generation, if any, keeps serving. On success the file's previous generation stops taking
  // new tasks. Same as apply() with this one generation.
  std::string install(GenerationPtr generation);

  // Installs and removes several files as ONE switch, under one lock: new assignments see either every
  // binding before it or every binding after it. The final kind -> file mapping is validated as a whole,
  // so two files may trade kinds (a.so K1->K2 and b.so K2->K1) in one switch. A kind claimed by two files
  // in the final state is a conflict: a file that keeps its current generation wins over one that
  // changes, and between two changing files the first by path wins; the loser is refused (its file keeps
  // its previous generation, which is checked again), and validation repeats until the final state holds.
  // Installing the generation a file already serves changes nothing. Removing an unknown file is a no-op.
  SwitchResult apply(Switch change);

  // Records that the newest version of `file` failed to load; its current generation (if any) stays.
  void record_failure(const std::filesystem::path& file, std::string error);

  // The file is gone: its kinds stop taking new tasks (they answer COMPONENT_NOT_FOUND). Same as apply()
  // removing this one file.
  void remove_file(const std::filesystem::path& file);

  std::vector<FileStatus> files() const;
  std::vector<Binding> bindings() const;  // every kind currently served, sorted by kind

  // Called (outside the lock) after a kind's binding changed: new generation, or removed (null).
  using SwitchListener = std::function<void(const std::string& kind, const Binding& now)>;
  void on_switch(SwitchListener listener);

  // Drops every generation (host shutdown, after the router stopped). Listeners are not called.
  void clear();

  // Bookkeeping for `plugins`: a generation that is no longer current but still alive.
  void track_draining(const std::filesystem::path& file, std::weak_ptr<const plugin::Generation> g);

 private:
  struct FileEntry {
    std::string last_error;
    GenerationPtr current;
    std::vector<std::weak_ptr<const plugin::Generation>> previous;
    bool removed = false;
  };
  mutable std::shared_mutex mutex_;
  // Looked up by string_view without building a std::string (a kind longer than 15 chars allocated one).
  struct KindHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Binding, KindHash, std::equal_to<>> kinds_;
  std::map<std::filesystem::path, FileEntry> files_;
  std::unordered_map<std::string, uint32_t> plugin_numbers_;  // descriptor name -> Binding::plugin
  std::vector<SwitchListener> listeners_;
};

}  // namespace taskhost::registry
