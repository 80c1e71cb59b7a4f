// The timer plugin: kind timer.wait, declared once. TASKHOST_PLUGIN turns this into the manifest, the
// descriptor and the exported entry point.
#include <taskhost/sdk.hpp>

#include "timer_executor.hpp"

TASKHOST_PLUGIN("timer", "1.0.0",
                taskhost::kind<timer_plugin::TimerExecutor>(
                    "timer.wait", TH_ENCODING_JSON,
                    "Waits ms milliseconds with progress steps; re-attaches and ends at the original deadline",
                    R"({"type":"object","required":["ms"],"additionalProperties":false,"properties":{)"
                    R"("ms":{"type":"integer","minimum":0},"steps":{"type":"integer","minimum":1}}})",
                    R"({"type":"object","properties":{"waited_ms":{"type":"integer"},)"
                    R"("resumed":{"type":"boolean"}}})"));
