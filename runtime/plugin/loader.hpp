// Loading a plugin file into a new Generation: copy, inspect, open, validate, create executors.
//
// Steps, each failing with an error that names the file and what is wrong:
//   1. read the file into a private, content-addressed in-memory copy (memfd), so a file being
//      overwritten in the plugins dir never corrupts mapped code and the same path can load again;
//   2. inspect it without running code: ELF, the entry symbol, the manifest, a compatible ABI;
//   3. dlopen the copy (RTLD_NOW | RTLD_LOCAL) through Boost.DLL and call the entry point;
//   4. copy the descriptor, its kinds and their strings into host-owned storage, and validate the copy
//      (struct sizes, ABI, agreement with the manifest, required functions, whole capability groups,
//      non-empty unique kinds): from here only the copy is used, whatever the plugin writes later;
//   5. call each kind's factory; a failing or NULL factory fails the load (nothing half-loaded).
// Steps 3 to 5 run the plugin's code: they name the file to the fatal signal handler (crash_report.hpp), so
// that content which crashes the host while loading is refused by the next run instead of crashing it again.
#pragma once

#include "plugin/generation.hpp"
#include "plugin/isolation.hpp"

#include <taskhost/plugin.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace taskhost::plugin {

struct LoadResult {
  std::unique_ptr<Generation> generation;
  std::string error;  // "FILE: reason" when generation is null
};

// How the executor factories get the host table. shared: `host` itself, which must then outlive the
// generation (tests and tools with a table of their own). scoped: a copy the generation owns, scoped to
// it (host_scope.hpp); `host.context` must then be a HostScope, as the router's is.
enum class HostTable { shared, scoped };

// Contents (SHA-256 hex → why) refused before any of their code runs: what crashed the host loading earlier.
using RefusedContents = std::map<std::string, std::string>;

LoadResult load_generation(const std::filesystem::path& file, uint64_t generation_id, const th_host_api& host,
                           HostTable table = HostTable::shared, const RefusedContents* refused = nullptr);

// The same from bytes already read (`file` names them in errors and becomes the generation's source):
// what a plugin process does with the image the host handed it.
LoadResult load_generation_image(const std::filesystem::path& file, const std::string& image, uint64_t generation_id,
                                 const th_host_api& host, HostTable table = HostTable::shared,
                                 const RefusedContents* refused = nullptr);

// isolation = "process": the same reading and inspection (no plugin code runs in the host), then the
// plugin is loaded and run by a plugin process (isolated/isolated_plugin.hpp). A refusal reads as it would
// in-process; the process's own failures (cannot start, dies while loading) name the file too.
LoadResult load_isolated_generation(const std::filesystem::path& file, uint64_t generation_id, const th_host_api& host,
                                    HostTable table, const isolated::ProcessOptions& options);

// The content hash load_generation would give `file` (hex), or empty with `error` set.
std::string content_hash_of(const std::filesystem::path& file, std::string* error);

}  // namespace taskhost::plugin
