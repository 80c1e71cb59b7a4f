// A generation: one load of one plugin file. Immutable once built.
//
// Owns the plugin's code (in-process: the mapped library, a Boost.DLL shared_library over a private,
// content-addressed in-memory copy; isolated: the plugin process) and the executors its factories created. Destruction order is the safety argument: executors are destroyed
// first (each on_destroy_executor joins the plugin's threads), then the library is released. Because
// dlclose may not really unmap (unique symbols, TLS destructors), nothing here depends on it unmapping.
//
// Thread rule: const methods are safe from any thread. Destruction runs plugin code, so it must happen on
// a host thread: generations loaded by a PluginDirectory are destroyed by its releaser, each on a thread
// of its own, wherever their last reference drops (registry/generation_releaser.hpp).
#pragma once

#include "plugin/host_scope.hpp"
#include "plugin/kind_executor.hpp"
#include "plugin/loaded_code.hpp"
#include "plugin/manifest.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace taskhost::plugin {

class Generation {
 public:
  Generation(uint64_t id, std::filesystem::path source, std::string content_hash, PluginManifest manifest,
             std::unique_ptr<LoadedCode> code);
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  uint64_t id() const { return id_; }
  const std::filesystem::path& source() const { return source_; }  // the file in the plugins dir
  const std::string& content_hash() const { return content_hash_; }
  const std::string& name() const { return manifest_.name; }
  const std::string& version() const { return manifest_.version; }
  const PluginManifest& manifest() const { return manifest_; }
  // Set when the plugin runs in a process of its own (isolation = "process").
  std::optional<PluginProcessInfo> process() const { return code_->process(); }

  const std::vector<std::unique_ptr<KindExecutor>>& executors() const { return executors_; }
  const KindExecutor* find(std::string_view kind) const;

  // Loader use only: adds an executor while the generation is being built.
  void add_executor(std::unique_ptr<KindExecutor> executor) { executors_.push_back(std::move(executor)); }
  // Loader use only: the table this generation's factories get, scoped to it (host_scope.hpp). `host`
  // must be a table whose context is a HostScope (the router's).
  const th_host_api& scope_host_api(const th_host_api& host);

 private:
  uint64_t id_;
  std::filesystem::path source_;
  std::string content_hash_;
  PluginManifest manifest_;
  std::unique_ptr<LoadedCode> code_;                    // destroyed after executors_ (declared first)
  // The table the executors hold a pointer to (plugin.h: valid until on_destroy_executor returns).
  HostScope scope_;
  th_host_api host_api_{};
  std::vector<std::unique_ptr<KindExecutor>> executors_;  // destroyed first
};

}  // namespace taskhost::plugin
