#include "plugin/loader.hpp"

#include "common/crash_report.hpp"
#include "plugin/descriptor_check.hpp"
#include "plugin/file_bytes.hpp"
#include "plugin/isolated/isolated_plugin.hpp"
#include "plugin/loaded_library.hpp"
#include "plugin/sha256.hpp"

#include <array>

namespace taskhost::plugin {
namespace {

// memfd names show in /proc/PID/maps as "/memfd:NAME (deleted)"; the kernel caps them at 249 bytes.
std::string memfd_name(const std::string& plugin_name, const std::string& hash) {
  return "taskhost-" + plugin_name.substr(0, 200) + "-" + hash.substr(0, 12);
}

const char* status_name(th_status status) {
  switch (status) {
    case TH_OK:
      return "TH_OK";
    case TH_UNSUPPORTED:
      return "TH_UNSUPPORTED";
    case TH_INVALID_ARGUMENT:
      return "TH_INVALID_ARGUMENT";
    case TH_FAILED:
      return "TH_FAILED";
    default:
      return "unknown status";
  }
}

LoadResult failure(const std::filesystem::path& file, const std::string& why) {
  return LoadResult{nullptr, file.string() + ": " + why};
}

// Runs one kind's factory. Returns the executor, or null with `why` set to the plugin's own words.
th_executor* create_executor(const th_kind_descriptor& kind, const th_host_api& host, std::string* why) {
  std::array<char, 512> text{};
  th_error_buf err{sizeof(th_error_buf), text.data(), text.size()};
  th_executor* executor = nullptr;
  const th_status status = kind.on_create_executor(&host, &executor, &err);
  text.back() = '\0';  // a plugin that ignored capacity still cannot make us read past the buffer
  const std::string name = kind.kind;
  if (status != TH_OK) {
    // A failing factory must leave *out NULL; if it did not, the pointer is not trusted with a destroy.
    *why = "kind '" + name + "': on_create_executor failed with " + status_name(status) + " (" +
           std::to_string(status) + "): " + (text[0] ? text.data() : "no error text");
    return nullptr;
  }
  if (executor == nullptr) *why = "kind '" + name + "': on_create_executor returned TH_OK but a NULL executor";
  return executor;
}

}  // namespace

LoadResult load_generation(const std::filesystem::path& file, uint64_t generation_id, const th_host_api& host,
                           HostTable table, const RefusedContents* refused) {
  std::string why;
  const std::optional<std::string> image = read_file_bytes(file, &why);
  if (!image) return failure(file, why);
  return load_generation_image(file, *image, generation_id, host, table, refused);
}

namespace {

// Inspects the bytes about to be loaded, before any of their code runs (dlopen, or a plugin process): an
// incompatible or malformed file is refused before its static constructors can run.
std::optional<PluginManifest> inspect_for_load(const std::filesystem::path& file, const std::string& image,
                                               LoadResult* refused) {
  Inspection inspection = inspect_image(file, image);
  if (!inspection.ok()) {
    refused->error = inspection.error;
    return std::nullopt;
  }
  return std::move(*inspection.manifest);
}

}  // namespace

LoadResult load_generation_image(const std::filesystem::path& file, const std::string& image, uint64_t generation_id,
                                 const th_host_api& host, HostTable table, const RefusedContents* refused_contents) {
  std::string why;
  std::string hash = sha256_hex(image);
  if (refused_contents != nullptr) {
    if (const auto it = refused_contents->find(hash); it != refused_contents->end()) return failure(file, it->second);
  }
  LoadResult refused;
  std::optional<PluginManifest> manifest = inspect_for_load(file, image, &refused);
  if (!manifest) return refused;

  // From the first line of the plugin's code (its initializers, in dlopen) to its last factory.
  const std::string file_name = file.string();
  const crash_report::LoadScope loading(file_name, hash);

  std::unique_ptr<LoadedLibrary> library = LoadedLibrary::open(image, memfd_name(manifest->name, hash), file_name, hash, &why);
  if (!library) return failure(file, "dlopen refused it: " + why);

  const auto entry = reinterpret_cast<th_plugin_entry_fn>(library->symbol(TASKHOST_ENTRY_SYMBOL));
  if (entry == nullptr) return failure(file, std::string("dlsym cannot find ") + TASKHOST_ENTRY_SYMBOL);
  // Copied before it is checked, and only the copy is used: the plugin's descriptors are its own writable
  // memory, which its factories (run below) could change after the check (a kind's name, its encoding,
  // on_start set to NULL; or a later kind's descriptor before it is read).
  const std::unique_ptr<DescriptorCopy> copy = DescriptorCopy::take(entry(), *manifest, &why);
  if (!copy) return failure(file, why);
  why = check_descriptor(&copy->plugin(), *manifest);
  if (!why.empty()) return failure(file, why);

  // From here the generation owns the library; on any failure below, destroying it destroys the
  // executors created so far and then unloads the library, in that order.
  // `hash` copied, not moved: `loading` names it until the last factory returned.
  auto generation = std::make_unique<Generation>(generation_id, file, hash, std::move(*manifest), std::move(library));
  const th_host_api& factory_host = table == HostTable::scoped ? generation->scope_host_api(host) : host;
  for (size_t i = 0; i < copy->kind_count(); ++i) {
    const th_kind_descriptor& kind = copy->kind(i);
    th_executor* executor = create_executor(kind, factory_host, &why);
    if (executor == nullptr) return failure(file, why);
    generation->add_executor(std::make_unique<KindExecutor>(kind, executor));
  }
  return LoadResult{std::move(generation), {}};
}

LoadResult load_isolated_generation(const std::filesystem::path& file, uint64_t generation_id, const th_host_api& host,
                                    HostTable table, const isolated::ProcessOptions& options) {
  std::string why;
  const std::optional<std::string> image = read_file_bytes(file, &why);
  if (!image) return failure(file, why);
  LoadResult refused;
  std::optional<PluginManifest> manifest = inspect_for_load(file, *image, &refused);
  if (!manifest) return refused;

  std::unique_ptr<isolated::IsolatedPlugin> process = isolated::IsolatedPlugin::open(file, *image, *manifest, options, &why);
  if (!process) return LoadResult{nullptr, why};
  // The generation exists before the process starts, so that the process's sink calls (its factories'
  // log lines included) go through the generation's own table from the first one, as in-process.
  isolated::IsolatedPlugin& plugin = *process;
  auto generation =
      std::make_unique<Generation>(generation_id, file, sha256_hex(*image), std::move(*manifest), std::move(process));
  const th_host_api& sink = table == HostTable::scoped ? generation->scope_host_api(host) : host;
  // The router's hooks come with its scoped tables; a table of a test's or a tool's own has none.
  const HostHooks* hooks = table == HostTable::scoped ? host_scope(sink.context).hooks : nullptr;
  if (!plugin.launch(sink, hooks, &why)) return LoadResult{nullptr, why};
  why = check_descriptor(&plugin.descriptor(), generation->manifest());
  if (!why.empty()) return failure(file, why);
  const th_plugin_descriptor& descriptor = plugin.descriptor();
  for (size_t i = 0; i < descriptor.kind_count; ++i) {
    generation->add_executor(std::make_unique<KindExecutor>(*descriptor.kinds[i], plugin.executor(i)));
  }
  plugin.serve();
  return LoadResult{std::move(generation), {}};
}

std::string content_hash_of(const std::filesystem::path& file, std::string* error) {
  std::string why;
  const std::optional<std::string> image = read_file_bytes(file, &why);
  if (!image) {
    if (error) *error = file.string() + ": " + why;
    return {};
  }
  return sha256_hex(*image);
}

}  // namespace taskhost::plugin
