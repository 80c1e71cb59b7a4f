// The sample's name and version: used by TASKHOST_PLUGIN (manifest and descriptor) and in every task's
// output, so a test can tell which build served a task.
#pragma once

namespace interactive {

constexpr char kPluginName[] = "cpp-interactive";
constexpr char kPluginVersion[] = "1.0.0";

}  // namespace interactive
