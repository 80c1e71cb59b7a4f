// taskhost-plugin-child: the process a plugin with isolation = "process" runs in. Started by the host
// (runtime/plugin/isolated/), never by hand; all it does is in child_side.cpp.
#include "plugin/isolated/child_side.hpp"

int main(int argc, char** argv) { return taskhost::plugin::isolated::run_plugin_process(argc, argv); }
