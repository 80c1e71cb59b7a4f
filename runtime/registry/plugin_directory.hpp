// The plugins directory: which `.so` files are there, loaded into generations and installed into the
// registry. scan() is idempotent and is the one mechanism behind startup, SIGHUP, `taskhost reload` and
// the directory watcher: unchanged files (same content hash) are left alone, new or changed ones load as
// a new generation, files that are gone are removed from the registry.
//
// Every failure is recorded against the file (KindRegistry::record_failure) and never stops the scan:
// one bad plugin never keeps the others from serving.
//
// Thread rule: scan()/load_file()/remove_file() serialize on an internal mutex; safe from any thread.
#pragma once

#include "registry/kind_registry.hpp"

#include <taskhost/plugin.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace taskhost::registry {

struct ScanReport {
  std::vector<std::filesystem::path> loaded;   // files that got a new generation
  std::vector<std::filesystem::path> removed;  // files gone from the directory
  std::vector<std::string> errors;             // "FILE: reason", one per file that failed
};

class PluginDirectory {
 public:
  // `host` (the router's sink table) must outlive every generation loaded here.
  PluginDirectory(std::filesystem::path dir, KindRegistry& registry, const th_host_api& host);

  const std::filesystem::path& path() const { return dir_; }

  ScanReport scan();
  // Loads one file (new generation if its content changed). Returns "" or "FILE: reason".
  std::string load_file(const std::filesystem::path& file);
  void remove_file(const std::filesystem::path& file);

 private:
  enum class Outcome { unchanged, loaded, failed };
  // One file: skip if its content is what already serves, else load and install. REQUIRES: mutex_ held.
  Outcome load_locked(const std::filesystem::path& file, std::string* error);

  std::filesystem::path dir_;
  KindRegistry& registry_;
  const th_host_api& host_;
  std::mutex mutex_;
  std::atomic<uint64_t> next_generation_{1};
};

}  // namespace taskhost::registry
