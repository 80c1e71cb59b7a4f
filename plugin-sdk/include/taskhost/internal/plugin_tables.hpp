// Compile-time construction of what TASKHOST_PLUGIN emits: the manifest text (plugin.h's format, in its
// own ELF section), the kind descriptors and the plugin descriptor. Built from ONE list of KindSpecs, so
// the manifest and the descriptors cannot disagree. Not part of the author's API.
#pragma once

#include <taskhost/plugin.h>

#include <array>
#include <cstddef>
#include <taskhost/internal/executor_glue.hpp>
#include <taskhost/sdk/kind.hpp>

namespace taskhost::internal {

// The manifest text up to the value of "name=". A function, not an inline variable: vague-linkage data
// may become a STB_GNU_UNIQUE symbol that keeps the plugin from ever being unloaded.
constexpr const char* manifest_head() {
  return "taskhost-manifest 1\nabi=" TH_STR(TASKHOST_ABI_MAJOR) "." TH_STR(TASKHOST_ABI_MINOR) "\nname=";
}

constexpr std::size_t length(const char* s) {
  std::size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

constexpr bool equal(const char* a, const char* b) {
  std::size_t i = 0;
  for (; a[i] != '\0' && a[i] == b[i]; ++i) {
  }
  return a[i] == b[i];
}

// Plugin name and version: non-empty, one line, no control characters, no spaces at either end.
constexpr bool valid_value(const char* s) {
  if (s == nullptr || s[0] == '\0' || s[0] == ' ') return false;
  std::size_t n = 0;
  for (; s[n] != '\0'; ++n) {
    if (static_cast<unsigned char>(s[n]) < 0x20) return false;
  }
  return s[n - 1] != ' ';
}

// Kind names: non-empty, printable, no spaces and no commas (the manifest lists them comma-separated).
template <std::size_t N>
constexpr bool valid_kind_names(const std::array<KindSpec, N>& kinds) {
  for (const KindSpec& k : kinds) {
    if (k.name == nullptr || k.name[0] == '\0') return false;
    for (std::size_t i = 0; k.name[i] != '\0'; ++i) {
      const unsigned char c = static_cast<unsigned char>(k.name[i]);
      if (c <= 0x20 || c == ',' || c == 0x7f) return false;
    }
  }
  return true;
}

template <std::size_t N>
constexpr bool unique_kind_names(const std::array<KindSpec, N>& kinds) {
  for (std::size_t i = 0; i < N; ++i) {
    for (std::size_t j = i + 1; j < N; ++j) {
      if (equal(kinds[i].name, kinds[j].name)) return false;
    }
  }
  return true;
}

// Size of the manifest text including its NUL.
template <std::size_t N>
constexpr std::size_t manifest_size(const char* name, const char* version, const std::array<KindSpec, N>& kinds) {
  std::size_t n = length(manifest_head()) + length(name) + length("\nversion=") + length(version) + length("\nkinds=");
  for (const KindSpec& k : kinds) n += length(k.name) + 1;  // name plus ',' or the final '\n'
  return n + 1;
}

template <std::size_t Size, std::size_t N>
constexpr std::array<char, Size> manifest_text(const char* name, const char* version,
                                               const std::array<KindSpec, N>& kinds) {
  std::array<char, Size> out{};
  std::size_t at = 0;
  auto put = [&](const char* s) {
    for (std::size_t i = 0; s[i] != '\0'; ++i) out[at++] = s[i];
  };
  put(manifest_head());
  put(name);
  put("\nversion=");
  put(version);
  put("\nkinds=");
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) put(",");
    put(kinds[i].name);
  }
  put("\n");
  return out;  // the last byte stays '\0'
}

template <std::size_t N>
constexpr std::array<th_kind_descriptor, N> kind_descriptors(const std::array<KindSpec, N>& kinds) {
  std::array<th_kind_descriptor, N> out{};
  for (std::size_t i = 0; i < N; ++i) {
    const KindSpec& k = kinds[i];
    th_kind_descriptor& d = out[i];
    d.struct_size = sizeof(th_kind_descriptor);
    d.kind = k.name;
    d.encoding = k.encoding;
    d.on_create_executor = k.create;
    d.on_destroy_executor = &on_destroy_executor;
    d.on_start = &on_start;
    d.on_cancel = &on_cancel;
    d.on_deliver = k.has_deliver ? &on_deliver : nullptr;
    d.on_reconcile = k.has_reconcile ? &on_reconcile : nullptr;
    d.on_release = &on_release;
    d.on_can_reattach = k.has_reattach ? &on_can_reattach : nullptr;
    d.on_detach = k.has_reattach ? &on_detach : nullptr;
    d.description = k.description;
    d.input_schema_json = k.input_schema_json;
    d.output_schema_json = k.output_schema_json;
  }
  return out;
}

template <std::size_t N>
constexpr std::array<const th_kind_descriptor*, N> pointers_to(const std::array<th_kind_descriptor, N>& descriptors) {
  std::array<const th_kind_descriptor*, N> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = &descriptors[i];
  return out;
}

template <std::size_t N>
constexpr th_plugin_descriptor plugin_descriptor(const char* name, const char* version,
                                                 const std::array<const th_kind_descriptor*, N>& kinds) {
  th_plugin_descriptor d{};
  d.struct_size = sizeof(th_plugin_descriptor);
  d.abi_major = TASKHOST_ABI_MAJOR;
  d.abi_minor = TASKHOST_ABI_MINOR;
  d.name = name;
  d.version = version;
  d.kind_count = N;
  d.kinds = kinds.data();
  return d;
}

}  // namespace taskhost::internal
