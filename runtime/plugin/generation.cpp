#include "plugin/generation.hpp"

namespace taskhost::plugin {

Generation::Generation(uint64_t id, std::filesystem::path source, std::string content_hash, PluginManifest manifest,
                       std::unique_ptr<LoadedCode> code)
    : id_(id),
      source_(std::move(source)),
      content_hash_(std::move(content_hash)),
      manifest_(std::move(manifest)),
      code_(std::move(code)) {}

Generation::~Generation() {
  // Spelled out although member order already implies it: every on_destroy_executor (which joins the
  // plugin's threads) must return before the code it runs is unmapped. An isolated plugin's process
  // still calls the sink until it has exited, so the code goes before scope_, which those calls use.
  executors_.clear();
  code_.reset();
}

const th_host_api& Generation::scope_host_api(const th_host_api& host) {
  const HostScope& router = host_scope(host.context);
  scope_ = HostScope{router.host, id_, manifest_.name, router.hooks};
  host_api_ = host;
  host_api_.context = reinterpret_cast<th_host_context*>(&scope_);
  return host_api_;
}

const KindExecutor* Generation::find(std::string_view kind) const {
  for (const auto& executor : executors_) {
    if (executor->kind() == kind) return executor.get();
  }
  return nullptr;
}

}  // namespace taskhost::plugin
