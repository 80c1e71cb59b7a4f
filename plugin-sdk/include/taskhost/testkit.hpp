// The taskhost plugin test kit: run a plugin's executors in a unit test with no host.
//
//   #include <taskhost/testkit.hpp>
//   taskhost::testkit::PluginUnderTest plugin(taskhost_plugin_entry);      // linked into the test
//   // or: taskhost::testkit::PluginUnderTest plugin("build/plugins/my.so"); // the built file
//   auto task = plugin.start("my.kind", R"({"n": 3})");
//   auto result = plugin.wait_terminal(task, std::chrono::seconds(5));
//   CHECK(result->state == TH_STATE_SUCCEEDED);
//
// Header-only; needs <dlfcn.h> (link ${CMAKE_DL_LIBS} on old glibc) and threads: the CMake target
// taskhost::plugin_testkit carries both. Pieces: FakeHost (testkit/fake_host.hpp) is the sink table
// with the host's rules; PluginUnderTest (testkit/plugin_under_test.hpp) loads and drives a plugin;
// Event/TaskView/TaskResult (testkit/events.hpp) are what they record.
#pragma once

#include <taskhost/testkit/events.hpp>
#include <taskhost/testkit/fake_host.hpp>
#include <taskhost/testkit/plugin_under_test.hpp>
