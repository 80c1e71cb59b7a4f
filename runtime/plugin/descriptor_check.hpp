// Validation of the descriptor a plugin's entry point returned, before the host calls anything else in
// it: struct sizes, ABI, agreement with the manifest read from the file, required functions, whole
// capability groups, non-empty unique kinds, known encodings (lessons.md rules 4 and 5).
//
// The loader checks a DescriptorCopy (below), never the plugin's own descriptor: that is memory the plugin
// can still write after the check.
//
// Thread rule: pure functions, safe from any thread. A DescriptorCopy is immutable once taken.
#pragma once

#include "plugin/manifest.hpp"

#include <taskhost/plugin.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace taskhost::plugin {

// Size of th_kind_descriptor in ABI 1.0: everything before the fields appended in 1.1.
inline constexpr size_t kKindDescriptorSize_1_0 = offsetof(th_kind_descriptor, description);
// th_plugin_descriptor has had no field appended since 1.0.
inline constexpr size_t kPluginDescriptorSize_1_0 = sizeof(th_plugin_descriptor);

// Empty when `descriptor` may be used; otherwise the first problem, naming the field or kind (no file
// prefix).
std::string check_descriptor(const th_plugin_descriptor* descriptor, const PluginManifest& manifest);

// A plugin's descriptor copied into storage the host owns: the plugin struct, each kind descriptor (into a
// zeroed struct, so fields past the plugin's struct_size read as absent) and every string they point to.
// The plugin's descriptors are writable memory its own code can change at any time (a factory rewriting
// its kind's name, encoding or on_start after the check): the loader checks this copy and uses nothing
// else from then on. Not movable: the copied descriptors point into its own strings.
class DescriptorCopy {
 public:
  // Copies what `raw` (an entry point's answer) holds. Null with `why` set when `raw` cannot be read
  // safely (a NULL descriptor, a kinds array shorter than the manifest says...): then `why` is
  // check_descriptor's own words for `raw`.
  static std::unique_ptr<DescriptorCopy> take(const th_plugin_descriptor* raw, const PluginManifest& manifest,
                                              std::string* why);
  DescriptorCopy(const DescriptorCopy&) = delete;
  DescriptorCopy& operator=(const DescriptorCopy&) = delete;

  const th_plugin_descriptor& plugin() const { return plugin_; }
  const th_kind_descriptor& kind(size_t i) const { return kinds_[i]->descriptor; }
  size_t kind_count() const { return kinds_.size(); }

 private:
  struct Kind {
    th_kind_descriptor descriptor{};
    std::string kind, description, input_schema, output_schema;
  };
  DescriptorCopy() = default;

  th_plugin_descriptor plugin_{};
  std::string name_, version_;
  std::vector<std::unique_ptr<Kind>> kinds_;
  std::vector<const th_kind_descriptor*> kind_list_;  // plugin_.kinds
};

}  // namespace taskhost::plugin
