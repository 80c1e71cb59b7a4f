#include "tasks/discovery.hpp"

#include "plugin/kind_executor.hpp"

namespace taskhost::tasks {

v1::TaskCompletion discovery_answer(const registry::KindRegistry& registry, const std::string& worker_id,
                                    const std::string& task_id) {
  v1::TaskCompletion c;
  c.set_task_id(task_id);
  c.set_attempt(1);
  c.set_state(v1::SUCCEEDED);
  c.set_worker_id(worker_id);
  auto* list = c.mutable_components();
  for (const auto& b : registry.bindings()) {
    auto* info = list->add_components();
    info->set_component_id(b.executor->kind());
    info->set_path("/" + b.executor->kind());
    if (!b.executor->description().empty()) info->set_description(b.executor->description());
    if (!b.executor->input_schema().empty()) info->set_input_schema(b.executor->input_schema());
    if (!b.executor->output_schema().empty()) info->set_output_schema(b.executor->output_schema());
  }
  return c;
}

}  // namespace taskhost::tasks
