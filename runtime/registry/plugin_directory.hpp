// The plugins directory: which `.so` files are there, loaded into generations and installed into the
// registry. scan() is idempotent and is the one mechanism behind startup, SIGHUP, `taskhost reload` and
// the directory watcher: unchanged files (same content hash) are left alone, new or changed ones load as
// a new generation, files that are gone are removed from the registry. Everything one scan changes is
// installed as ONE registry switch (KindRegistry::apply), so files may trade kinds between them.
//
// Each file's content is read and hashed at most once per scan: a file whose identity (inode, size,
// times) is what the last scan saw, and old enough to be trusted (FileIdentity::settled), is not read at
// all; a file with a new identity is loaded straight away — the load hashes it — and the new generation
// is dropped unused if its hash is the one already serving (a touch, or the same bytes copied over).
//
// Every generation loaded here is destroyed by the directory's releaser, on a thread of its own, once its
// last reference drops (registry/generation_releaser.hpp): a slow on_destroy_executor holds up no scan, no
// pool thread and no other generation's unloading.
//
// Every failure is recorded against the file (KindRegistry::record_failure) and never stops the scan:
// one bad plugin never keeps the others from serving, and a file whose new version fails keeps its
// previous generation serving.
//
// Thread rule: scan()/load_file()/remove_file() serialize on an internal mutex; safe from any thread.
// Scan listeners run on the scanning thread after the mutex is released.
#pragma once

#include "registry/bounded_load.hpp"
#include "registry/file_identity.hpp"
#include "registry/generation_releaser.hpp"
#include "registry/kind_registry.hpp"

#include <taskhost/plugin.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::registry {

struct ScanReport {
  std::vector<std::filesystem::path> loaded;   // files that got a new generation
  std::vector<std::filesystem::path> removed;  // files gone from the directory
  std::vector<std::string> errors;             // "FILE: reason", one per file that failed
  std::vector<RetiredGeneration> retired;      // generations that stopped taking new tasks in this scan
  size_t migrated = 0;                         // running tasks an operator's reload --migrate moved
  bool changed() const { return !loaded.empty() || !removed.empty() || !retired.empty(); }
};

struct ScanOptions {
  // Files still being written (the watcher's view): left exactly as they are, neither loaded nor removed.
  std::set<std::filesystem::path> settling;
  // Load again a file whose very content already failed to load. An operator's reload does (a factory may
  // fail for a passing reason); the watcher does not, so a bad file is not retried on every event. A file
  // refused only because another file held one of its kinds is retried whenever the scan changes anything.
  bool retry_failed = true;
};

// Whether a directory entry name is a plugin file: `name.so`, not hidden. Editors and installers write
// `.name.so.tmp` or `name.so.part` and rename it into place, and a half-written file is never loaded.
bool is_plugin_file_name(std::string_view name);

class PluginDirectory {
 public:
  // `host` (the router's sink table) must outlive every generation loaded here. A file still loading
  // after `load_timeout` fails (0: no limit; see registry/bounded_load.hpp).
  PluginDirectory(std::filesystem::path dir, KindRegistry& registry, const th_host_api& host,
                  std::chrono::milliseconds load_timeout = std::chrono::seconds(10),
                  plugin::IsolationPolicy isolation = {});
  // Destroys the generations queued for destruction, and those released from now on where they drop.
  ~PluginDirectory();
  PluginDirectory(const PluginDirectory&) = delete;
  PluginDirectory& operator=(const PluginDirectory&) = delete;

  const std::filesystem::path& path() const { return dir_; }
  const KindRegistry& registry() const { return registry_; }

  ScanReport scan(const ScanOptions& options = {});
  // Loads one file (new generation if its content changed). Returns "" or "FILE: reason".
  std::string load_file(const std::filesystem::path& file);
  void remove_file(const std::filesystem::path& file);

  // Called after every scan() with its report (also when nothing changed), on the scanning thread.
  using ScanListener = std::function<void(const ScanReport&)>;
  void on_scan(ScanListener listener);

 private:
  // What the last scan learned about a file's content.
  struct Known {
    FileIdentity identity;  // taken before the content was read
    std::string hash;       // of that content; empty if it could not be read
    bool failed = false;    // that content did not load, or was refused
    bool conflict = false;  // refused only because another file held one of its kinds
  };
  ScanReport scan_locked(const ScanOptions& options);  // REQUIRES: mutex_ held
  void record_failure(const std::filesystem::path& file, Known known, std::string error,
                      ScanReport& report);  // REQUIRES: mutex_ held
  // Loads `file` as a new generation, owned by releaser_ from the start (also when it goes unused).
  GenerationPtr load(const std::filesystem::path& file, std::string* error);

  std::filesystem::path dir_;
  KindRegistry& registry_;
  BoundedLoader loader_;
  const std::shared_ptr<GenerationReleaser> releaser_ = GenerationReleaser::make();
  std::mutex mutex_;
  std::map<std::filesystem::path, Known> known_;  // guarded by mutex_
  std::atomic<uint64_t> next_generation_{1};
  std::mutex listeners_mutex_;
  std::vector<ScanListener> listeners_;
};

}  // namespace taskhost::registry
