// taskhost::kind<Executor>(name, ...) — one entry of the TASKHOST_PLUGIN list: a task kind and the
// TaskExecutor class that serves it.
//
// Everything here is evaluated at compile time; the result only feeds TASKHOST_PLUGIN, which turns the
// list into the plugin's manifest, descriptors and entry point. All strings must be string literals (or
// other constants with static storage): the descriptors point at them for as long as the plugin is loaded.
#pragma once

#include <taskhost/plugin.h>

#include <taskhost/internal/executor_glue.hpp>
#include <taskhost/internal/overrides.hpp>
#include <taskhost/sdk/task_executor.hpp>
#include <type_traits>

namespace taskhost {

struct KindSpec {
  const char* name = nullptr;
  th_encoding encoding = TH_ENCODING_JSON;
  const char* description = nullptr;
  const char* input_schema_json = nullptr;
  const char* output_schema_json = nullptr;
  th_status (*create)(const th_host_api*, th_executor**, th_error_buf*) = nullptr;
  bool has_deliver = false;
  bool has_reconcile = false;
  bool has_reattach = false;  // can_reattach and detach travel together (one capability group)
};

// `name` is matched exactly by the host and must be unique across loaded plugins: prefix it with the
// plugin's name ("hello.greet"). No commas or whitespace. The schemas are JSON Schema as JSON text.
template <typename Executor>
constexpr KindSpec kind(const char* name, th_encoding encoding = TH_ENCODING_JSON, const char* description = nullptr,
                        const char* input_schema_json = nullptr, const char* output_schema_json = nullptr) {
  static_assert(std::is_base_of_v<TaskExecutor, Executor>,
                "taskhost::kind<E>: E must derive from taskhost::TaskExecutor");
  static_assert(!std::is_abstract_v<Executor>,
                "taskhost::kind<E>: E must override cancel() (and nothing may stay pure)");
  static_assert(std::is_abstract_v<Executor> || std::is_default_constructible_v<Executor>,
                "taskhost::kind<E>: E needs a default constructor");
  KindSpec spec;
  spec.name = name;
  spec.encoding = encoding;
  spec.description = description;
  spec.input_schema_json = input_schema_json;
  spec.output_schema_json = output_schema_json;
  spec.create = &internal::on_create_executor<Executor>;
  spec.has_deliver = internal::declares_deliver<Executor>();
  spec.has_reconcile = internal::declares_reconcile<Executor>();
  spec.has_reattach = internal::declares_can_reattach<Executor>() || internal::declares_detach<Executor>();
  return spec;
}

}  // namespace taskhost
