#include "plugin/descriptor_check.hpp"

#include "common/json_text.hpp"
#include "common/utf8.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>
#include <vector>

namespace taskhost::plugin {
namespace {

// More kinds than this in one plugin means the pointer or count is garbage, not a real plugin.
constexpr size_t kMaxKinds = 4096;
// A discovery schema longer than this is taken as not terminated (and so refused as not JSON).
constexpr size_t kMaxSchemaBytes = 1u << 20;

// The plugin's own strings in an error: not trusted to be UTF-8 (the error is shown in JSON listings).
std::string quote(std::string_view s) { return "'" + utf8_sanitized(s) + "'"; }

std::string check_kind(const th_kind_descriptor& k, const std::string& name) {
  const std::string who = "kind " + quote(name) + ": ";
  if (k.encoding != TH_ENCODING_JSON && k.encoding != TH_ENCODING_PROTOBUF) {
    return who + "encoding " + std::to_string(k.encoding) +
           " is neither TH_ENCODING_JSON (0) nor TH_ENCODING_PROTOBUF (1)";
  }
  const std::pair<const char*, bool> required[] = {
      {"on_create_executor", k.on_create_executor != nullptr},
      {"on_destroy_executor", k.on_destroy_executor != nullptr},
      {"on_start", k.on_start != nullptr},
      {"on_cancel", k.on_cancel != nullptr},
  };
  for (const auto& [field, present] : required) {
    if (!present) return who + "required function " + field + " is NULL";
  }
  // Discovery publishes these as JSON: text that is not would reach every client that lists the kinds.
  if (TH_HAS_FIELD(&k, th_kind_descriptor, output_schema_json)) {
    const std::pair<const char*, const char*> schemas[] = {{"input_schema_json", k.input_schema_json},
                                                           {"output_schema_json", k.output_schema_json}};
    for (const auto& [field, text] : schemas) {
      if (text == nullptr || *text == '\0') continue;
      const std::string problem = json_text_problem(std::string_view(text, ::strnlen(text, kMaxSchemaBytes + 1)));
      if (!problem.empty()) return who + field + " is not JSON (" + problem + ")";
    }
  }
  // Capability group: both or neither.
  const bool can_reattach = k.on_can_reattach != nullptr;
  const bool detach = k.on_detach != nullptr;
  if (can_reattach != detach) {
    return who + "half-provided capability group 're-attach': " +
           (can_reattach ? "on_can_reattach is set but on_detach is NULL"
                         : "on_detach is set but on_can_reattach is NULL");
  }
  return {};
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

// A plugin string copied; NULL stays NULL (the check tells it from empty). At most `limit` bytes.
const char* copy_text(const char* text, std::string& into, size_t limit = std::string::npos) {
  if (text == nullptr) return nullptr;
  into.assign(text, limit == std::string::npos ? std::strlen(text) : ::strnlen(text, limit));
  return into.c_str();
}

}  // namespace

std::unique_ptr<DescriptorCopy> DescriptorCopy::take(const th_plugin_descriptor* raw, const PluginManifest& manifest,
                                                     std::string* why) {
  // What must hold before anything past the plugin struct is read. Each is refused by check_descriptor,
  // which says so in its own order and words (no plugin code ran since `raw` was returned).
  bool readable = raw != nullptr && raw->struct_size >= kPluginDescriptorSize_1_0 &&
                  raw->kind_count <= kMaxKinds && raw->kind_count == manifest.kinds.size() &&
                  (raw->kind_count == 0 || raw->kinds != nullptr);
  for (size_t i = 0; readable && i < raw->kind_count; ++i) readable = raw->kinds[i] != nullptr;
  if (!readable) {
    *why = check_descriptor(raw, manifest);
    if (why->empty()) *why = "the descriptor cannot be read";  // not reached: each case above is refused
    return nullptr;
  }

  auto copy = std::unique_ptr<DescriptorCopy>(new DescriptorCopy);
  std::memcpy(&copy->plugin_, raw, sizeof(th_plugin_descriptor));
  copy->plugin_.struct_size = sizeof(th_plugin_descriptor);
  copy->plugin_.name = copy_text(raw->name, copy->name_);
  copy->plugin_.version = copy_text(raw->version, copy->version_);
  for (size_t i = 0; i < raw->kind_count; ++i) {
    const th_kind_descriptor& from = *raw->kinds[i];
    auto kind = std::make_unique<Kind>();
    th_kind_descriptor& to = kind->descriptor;
    // Only what the plugin's struct really has; anything appended after its ABI minor stays zero. The
    // struct_size read once: the copy's is the size copied.
    const size_t size = std::min<size_t>(from.struct_size, sizeof(th_kind_descriptor));
    std::memcpy(&to, &from, size);
    to.struct_size = static_cast<uint32_t>(size);
    // Every string the copied bytes point to, each as far as the struct has it (fields past it are zero).
    if (TH_HAS_FIELD(&to, th_kind_descriptor, kind)) to.kind = copy_text(to.kind, kind->kind);
    if (TH_HAS_FIELD(&to, th_kind_descriptor, description)) {
      to.description = copy_text(to.description, kind->description);
    }
    // One byte past the check's limit, so that a schema too long (or not terminated) is still refused.
    if (TH_HAS_FIELD(&to, th_kind_descriptor, input_schema_json)) {
      to.input_schema_json = copy_text(to.input_schema_json, kind->input_schema, kMaxSchemaBytes + 1);
    }
    if (TH_HAS_FIELD(&to, th_kind_descriptor, output_schema_json)) {
      to.output_schema_json = copy_text(to.output_schema_json, kind->output_schema, kMaxSchemaBytes + 1);
    }
    copy->kind_list_.push_back(&to);
    copy->kinds_.push_back(std::move(kind));
  }
  copy->plugin_.kinds = copy->kind_list_.data();
  return copy;
}

std::string check_descriptor(const th_plugin_descriptor* d, const PluginManifest& manifest) {
  if (d == nullptr) return std::string(TASKHOST_ENTRY_SYMBOL) + " returned NULL";
  if (d->struct_size < kPluginDescriptorSize_1_0) {
    return "plugin descriptor struct_size is " + std::to_string(d->struct_size) + ", smaller than the ABI 1.0 size " +
           std::to_string(kPluginDescriptorSize_1_0);
  }
  if (std::string why; !abi_compatible(d->abi_major, d->abi_minor, &why))
    return "descriptor abi_major/abi_minor: " + why;
  if (d->abi_major != manifest.abi_major || d->abi_minor != manifest.abi_minor) {
    return "descriptor abi " + std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor) +
           " differs from the manifest's abi " + std::to_string(manifest.abi_major) + "." +
           std::to_string(manifest.abi_minor);
  }
  if (d->name == nullptr || manifest.name != d->name) {
    return "descriptor name " + (d->name ? quote(d->name) : std::string("NULL")) +
           " differs from the manifest's name " + quote(manifest.name);
  }
  if (d->version == nullptr || manifest.version != d->version) {
    return "descriptor version " + (d->version ? quote(d->version) : std::string("NULL")) +
           " differs from the manifest's version " + quote(manifest.version);
  }
  if (d->kind_count == 0) return "descriptor kind_count is 0: a plugin must serve at least one kind";
  if (d->kind_count > kMaxKinds) return "descriptor kind_count " + std::to_string(d->kind_count) + " is implausible";
  if (d->kinds == nullptr) return "descriptor kinds is NULL but kind_count is " + std::to_string(d->kind_count);
  // Checked before kinds[] is read: a kind_count past the array's end would be read as pointers.
  if (d->kind_count != manifest.kinds.size()) {
    return "descriptor kind_count is " + std::to_string(d->kind_count) + " but the manifest lists " +
           std::to_string(manifest.kinds.size()) + " kind(s) (" + join(manifest.kinds) + ")";
  }

  std::set<std::string> declared;
  for (size_t i = 0; i < d->kind_count; ++i) {
    std::string where = "kinds[" + std::to_string(i) + "]";
    const th_kind_descriptor* k = d->kinds[i];
    if (k == nullptr) return where + " is NULL";
    if (k->struct_size < kKindDescriptorSize_1_0) {
      // Name the kind too when the struct is at least long enough to hold its name.
      if (TH_HAS_FIELD(k, th_kind_descriptor, kind) && k->kind != nullptr) where += " (" + quote(k->kind) + ")";
      return where + ": struct_size is " + std::to_string(k->struct_size) + ", smaller than the ABI 1.0 size " +
             std::to_string(kKindDescriptorSize_1_0);
    }
    if (k->kind == nullptr || k->kind[0] == '\0') return where + ": kind name is empty";
    if (!valid_utf8(k->kind)) return where + ": kind name " + quote(utf8_sanitized(k->kind)) + " is not UTF-8";
    if (!declared.insert(k->kind).second) return "kind " + quote(k->kind) + " is declared twice";
    if (std::string why = check_kind(*k, k->kind); !why.empty()) return why;
  }

  const std::set<std::string> listed(manifest.kinds.begin(), manifest.kinds.end());
  for (const std::string& kind : declared) {
    if (!listed.contains(kind)) {
      return "kind " + quote(kind) + " is served by the descriptor but not listed in the manifest's kinds (" +
             join(manifest.kinds) + ")";
    }
  }
  for (const std::string& kind : manifest.kinds) {
    if (!declared.contains(kind))
      return "the manifest lists kind " + quote(kind) + " but the descriptor does not serve it";
  }
  return {};
}

}  // namespace taskhost::plugin
