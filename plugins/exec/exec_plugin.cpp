// The exec plugin: kind exec.run, declared once. TASKHOST_PLUGIN turns this into the manifest, the
// descriptor and the exported entry point.
#include <taskhost/sdk.hpp>

#include "exec_executor.hpp"

TASKHOST_PLUGIN("exec", "1.0.0",
                taskhost::kind<exec_plugin::ExecExecutor>(
                    "exec.run", TH_ENCODING_JSON,
                    "Runs a local program: streams stdout/stderr, steering text goes to its stdin",
                    R"({"type":"object","required":["argv"],"additionalProperties":false,"properties":{)"
                    R"("argv":{"type":"array","minItems":1,"items":{"type":"string"}},)"
                    R"("env":{"type":"object","additionalProperties":{"type":"string"}},)"
                    R"("cwd":{"type":"string"},"timeout_ms":{"type":"integer","minimum":1},)"
                    R"("stdin":{"type":"string"}}})",
                    R"({"type":"object","properties":{"exit_code":{"type":"integer"},)"
                    R"("stdout_bytes":{"type":"integer"},"stderr_bytes":{"type":"integer"}}})"));
