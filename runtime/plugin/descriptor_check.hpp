// Validation of the descriptor a plugin's entry point returned, before the host calls anything else in
// it: struct sizes, ABI, agreement with the manifest read from the file, required functions, whole
// capability groups, non-empty unique kinds, known encodings (lessons.md rules 4 and 5).
//
// Thread rule: pure function, safe from any thread. Reads only plugin-owned static data.
#pragma once

#include "plugin/manifest.hpp"

#include <taskhost/plugin.h>

#include <cstddef>
#include <string>

namespace taskhost::plugin {

// Size of th_kind_descriptor in ABI 1.0: everything before the fields appended in 1.1.
inline constexpr size_t kKindDescriptorSize_1_0 = offsetof(th_kind_descriptor, description);
// th_plugin_descriptor has had no field appended since 1.0.
inline constexpr size_t kPluginDescriptorSize_1_0 = sizeof(th_plugin_descriptor);

// Empty when `descriptor` may be used; otherwise the first problem, naming the field or kind (no file
// prefix).
std::string check_descriptor(const th_plugin_descriptor* descriptor, const PluginManifest& manifest);

}  // namespace taskhost::plugin
