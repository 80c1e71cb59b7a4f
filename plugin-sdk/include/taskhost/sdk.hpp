// The taskhost C++ plugin SDK: write one TaskExecutor class per task kind and one TASKHOST_PLUGIN line.
//
//   #include <taskhost/sdk.hpp>
//
//   class Echo final : public taskhost::TaskExecutor {
//    public:
//     taskhost::Status start(const taskhost::Task& task, taskhost::TaskSink& sink) override {
//       return sink.succeed(task.input());
//     }
//     taskhost::Status cancel(const taskhost::Task&, taskhost::TaskSink&) override { return {}; }
//   };
//
//   TASKHOST_PLUGIN("echo-plugin", "1.0.0",
//                   taskhost::kind<Echo>("echo.echo", TH_ENCODING_JSON, "returns its input"));
//
// Header-only over the C ABI in <taskhost/plugin.h>; works with g++/libstdc++ and clang++/libc++ because
// no C++ type crosses into the host. Build the plugin with taskhost_add_plugin() (CMake) or with the
// flags docs/plugin-guide.md lists: hidden visibility, so only taskhost_plugin_entry is exported.
//
// The pieces, one header each: Status (sdk/status.hpp), TaskSink (sdk/task_sink.hpp), Task and Message
// (sdk/task.hpp), TaskExecutor (sdk/task_executor.hpp), kind<E>() (sdk/kind.hpp), and RunTable
// (sdk/run_table.hpp), the running tasks of an executor that gives each its own thread. The glue that
// turns them into plugin.h's function tables lives in taskhost/internal/ and is not part of the API.
#pragma once

#include <taskhost/plugin.h>

#include <array>
#include <taskhost/internal/plugin_tables.hpp>
#include <taskhost/sdk/kind.hpp>
#include <taskhost/sdk/run_table.hpp>
#include <taskhost/sdk/status.hpp>
#include <taskhost/sdk/task.hpp>
#include <taskhost/sdk/task_executor.hpp>
#include <taskhost/sdk/task_sink.hpp>

// TASKHOST_PLUGIN(name, version, kind<E1>(...), kind<E2>(...), ...)
//
// Use once per plugin, at namespace scope of one source file. Defines, all from the one kinds list:
//   - the manifest (plugin.h's text format) in section TASKHOST_MANIFEST_SECTION, which the host reads
//     before running any plugin code; the kinds it lists are the descriptors' kinds by construction;
//   - one th_kind_descriptor per kind (the SDK's exception-safe glue around the executor class) and the
//     th_plugin_descriptor, all constant data with no static constructor;
//   - the exported entry point `taskhost_plugin_entry`.
// `name` and `version` are string constants (literals, or constexpr char arrays). A bad or duplicated
// kind name, an empty name/version or a kind list the manifest format cannot carry fails to compile.
#define TASKHOST_PLUGIN(name, version, ...)                                                                        \
  namespace {                                                                                                      \
  constexpr auto taskhost_kinds_ = ::std::array{__VA_ARGS__};                                                      \
  static_assert(::taskhost::internal::valid_value(name),                                                           \
                "TASKHOST_PLUGIN: the plugin name must be non-empty, one line, without spaces at the ends");       \
  static_assert(::taskhost::internal::valid_value(version),                                                        \
                "TASKHOST_PLUGIN: the version must be non-empty, one line, without spaces at the ends");           \
  static_assert(::taskhost::internal::valid_kind_names(taskhost_kinds_),                                           \
                "TASKHOST_PLUGIN: a kind name is empty or contains a comma, whitespace or a control char");        \
  static_assert(::taskhost::internal::unique_kind_names(taskhost_kinds_), "TASKHOST_PLUGIN: duplicate kind name"); \
  __attribute__((used, section(TASKHOST_MANIFEST_SECTION), aligned(1))) constexpr auto taskhost_manifest_ =        \
      ::taskhost::internal::manifest_text<::taskhost::internal::manifest_size(name, version, taskhost_kinds_)>(    \
          name, version, taskhost_kinds_);                                                                         \
  constexpr auto taskhost_kind_descriptors_ = ::taskhost::internal::kind_descriptors(taskhost_kinds_);             \
  constexpr auto taskhost_kind_pointers_ = ::taskhost::internal::pointers_to(taskhost_kind_descriptors_);          \
  constexpr th_plugin_descriptor taskhost_plugin_descriptor_ =                                                     \
      ::taskhost::internal::plugin_descriptor(name, version, taskhost_kind_pointers_);                             \
  }                                                                                                                \
  extern "C" TASKHOST_EXPORT const th_plugin_descriptor* taskhost_plugin_entry(void) {                             \
    return &taskhost_plugin_descriptor_;                                                                           \
  }                                                                                                                \
  static_assert(true, "TASKHOST_PLUGIN(...) is used as a declaration followed by a semicolon")
