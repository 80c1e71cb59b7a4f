#include "alternating_probe.hpp"

namespace taskhost::testing {

namespace {

ReloadRig::Options load_options(size_t max_active, std::chrono::milliseconds cancel_deadline) {
  ReloadRig::Options o;
  o.router.max_active = max_active;
  o.router.cancel_deadline = cancel_deadline;
  return o;
}

}  // namespace

AlternatingProbe::AlternatingProbe(size_t max_active, std::chrono::milliseconds cancel_deadline)
    : rig(load_options(max_active, cancel_deadline)) {
  install_plugin_file(probe_a(), targets_.path(), "a.so");
  install_plugin_file(probe_b(), targets_.path(), "b.so");
  versions_[rig.generation()] = "A";
}

uint64_t AlternatingProbe::replace(int round, Arrival how) {
  const bool to_b = round % 2 == 1;
  const std::string version = to_b ? "B" : "A";
  const fs::path build = to_b ? probe_b() : probe_a();
  switch (how) {
    case Arrival::rename_over: install_plugin_file(build, rig.dir.path(), "probe.so"); break;
    case Arrival::copy_over: copy_over(build, rig.path("probe.so")); break;
    case Arrival::symlink: swap_symlink(targets_.path() / (to_b ? "b.so" : "a.so"), rig.path("probe.so")); break;
  }
  const uint64_t gen = rig.wait_version(version);
  REQUIRE_MESSAGE(gen != 0, "replacement " << round << " to " << version << " never served");
  std::lock_guard lock(mu_);
  versions_[gen] = version;
  return gen;
}

std::string AlternatingProbe::version_of(uint64_t gen) const {
  std::lock_guard lock(mu_);
  const auto it = versions_.find(gen);
  return it == versions_.end() ? std::string() : it->second;
}

size_t AlternatingProbe::generations() const {
  std::lock_guard lock(mu_);
  return versions_.size();
}

}  // namespace taskhost::testing
