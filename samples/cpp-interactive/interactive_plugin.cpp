// The cpp-interactive sample plugin: its kinds, declared once. TASKHOST_PLUGIN turns this list into the
// manifest, the descriptors and the exported entry point.
#include <taskhost/sdk.hpp>

#include "count_executor.hpp"
#include "echo_executor.hpp"
#include "plugin_info.hpp"

TASKHOST_PLUGIN(interactive::kPluginName, interactive::kPluginVersion,
                taskhost::kind<interactive::CountExecutor>(
                    "interactive.count", TH_ENCODING_JSON,
                    "Counts steps with progress and checkpoints; asks, takes steering, re-attaches",
                    R"({"type":"object","properties":{"steps":{"type":"integer"},"delay_ms":{"type":"integer"},)"
                    R"("ask":{"type":"boolean"},"ask_at":{"type":"integer"}}})"),
                taskhost::kind<interactive::EchoExecutor>("interactive.echo", TH_ENCODING_JSON,
                                                          "Succeeds at once with its input"));
