// taskhost::testkit::PluginUnderTest — drive a plugin's executors in a unit test, without a host.
//
// It goes through the plugin's C entry point, so the test exercises exactly the descriptor the host sees:
// either an entry point linked into the test executable, or a built .so it dlopens (RTLD_NOW|RTLD_LOCAL).
// Loading checks what the host checks: ABI (same major, minor <= this header's), struct sizes, required
// functions, whole capability groups, unique non-empty kinds, and the manifest against the descriptor
// (for a .so the manifest is read from the file before dlopen, as the host does). Any failure throws
// std::runtime_error naming the reason. Then one executor per kind is created with a FakeHost's table.
//
// Tasks then follow the host's order: the task is set running, then on_start; a failed start ends it
// failed (TH_INVALID_ARGUMENT -> TH_ERROR_INVALID_INPUT) and releases it; deliver refuses ended tasks and
// answers to requests the task is not waiting for, and moves the task back to running when an answer
// was accepted; re-attach asks on_can_reattach first; a successful detach is followed by on_release.
// wait_terminal() releases the task once it ended, as the host does. The destructor cancels whatever is
// still running, ends it canceled if it does not finish within a deadline, releases every attempt,
// destroys the executors, then closes the library.
//
// Thread rule: calls for one task must come from one thread at a time (the host's strand guarantee);
// calls for different tasks may come from different threads. Queries are safe from any thread.
// Ownership: not copyable; the FakeHost, the library and the executors live as long as this object.
#pragma once

#include <atomic>
#include <dlfcn.h>
#include <taskhost/plugin.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <taskhost/internal/elf_manifest.hpp>
#include <taskhost/sdk/status.hpp>
#include <taskhost/testkit/events.hpp>
#include <taskhost/testkit/fake_host.hpp>
#include <vector>

// The entry point of a plugin linked into the test executable (TASKHOST_PLUGIN or TASKHOST_PLUGIN_ENTRY
// defines it), so a test can write `PluginUnderTest plugin(taskhost_plugin_entry);`. Declared only.
extern "C" const th_plugin_descriptor* taskhost_plugin_entry(void);

namespace taskhost::testkit {

struct StartOptions {
  std::string kind;
  std::string input = "{}";  // in the kind's encoding
  uint32_t attempt = 1;
  std::string id;         // empty: the kit names it "task-N"
  bool reattach = false;  // resume: on_can_reattach is asked first, then on_start with `checkpoint`
  std::string checkpoint;
};

// One started attempt of a task.
struct TaskHandle {
  std::string id;
  std::string kind;
  uint32_t attempt = 0;
  th_task_ref ref = 0;
  std::string input;
  Status start_status;  // what on_start answered (or why the kit did not call it)
};

class PluginUnderTest {
 public:
  // The plugin linked into this executable: pass `taskhost_plugin_entry`. If the executable carries a
  // manifest with the descriptor's name, it is checked against the descriptor.
  explicit PluginUnderTest(th_plugin_entry_fn entry) {
    if (entry == nullptr) throw std::runtime_error("entry point is NULL");
    try {
      for (const std::string& text : internal::manifests_of_file("/proc/self/exe")) {
        const internal::ManifestFields m = parse_manifest(text, "this executable");
        if (m.name == name_of(entry())) manifest_ = m;
      }
      adopt(entry(), "entry point");
    } catch (...) {
      teardown();
      throw;
    }
  }

  // A built plugin file, loaded the way the host loads it.
  explicit PluginUnderTest(const std::string& file) {
    try {
      const std::vector<std::string> manifests = internal::manifests_of_file(file);
      if (manifests.empty())
        throw std::runtime_error(file + ": no " TASKHOST_MANIFEST_SECTION " section (not a plugin?)");
      manifest_ = parse_manifest(manifests.front(), file);
      check_abi(manifest_->abi_major, manifest_->abi_minor, file + ": manifest");  // before running any code
      library_ = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (library_ == nullptr) throw std::runtime_error(file + ": dlopen: " + dlerror_text());
      void* entry = ::dlsym(library_, TASKHOST_ENTRY_SYMBOL);
      if (entry == nullptr) throw std::runtime_error(file + ": no " TASKHOST_ENTRY_SYMBOL " symbol");
      th_plugin_entry_fn fn;
      std::memcpy(&fn, &entry, sizeof(fn));  // object pointer to function pointer, as POSIX allows
      adopt(fn(), file);
    } catch (...) {
      teardown();
      throw;
    }
  }

  ~PluginUnderTest() { teardown(); }
  PluginUnderTest(const PluginUnderTest&) = delete;
  PluginUnderTest& operator=(const PluginUnderTest&) = delete;

  const th_plugin_descriptor& descriptor() const { return *descriptor_; }
  std::vector<std::string> kinds() const {
    std::vector<std::string> out;
    for (const auto& [name, e] : executors_) out.push_back(name);
    return out;
  }
  // The kind's descriptor as the host reads it: fields past the plugin's struct_size are zero.
  const th_kind_descriptor& kind(const std::string& name) const { return executor(name).desc; }
  FakeHost& host() { return *host_; }

  // --- driving tasks --------------------------------------------------------------------------------

  TaskHandle start(const std::string& kind, std::string input = "{}", uint32_t attempt = 1) {
    StartOptions o;
    o.kind = kind;
    o.input = std::move(input);
    o.attempt = attempt;
    return start(std::move(o));
  }

  TaskHandle start(StartOptions o) {
    Executor& ex = executor(o.kind);
    if (o.id.empty()) o.id = "task-" + std::to_string(next_task_++);
    Attempt a;
    a.id = o.id;
    a.kind = o.kind;
    a.attempt = o.attempt;
    a.input = o.input;
    a.reattach = o.reattach;
    a.checkpoint = o.checkpoint;
    a.ref = host_->open_attempt(o.id, o.kind, o.attempt, ex.desc.encoding);
    {
      std::lock_guard lock(mu_);
      attempts_[a.ref] = a;
    }
    TaskHandle h{a.id, a.kind, a.attempt, a.ref, a.input, Status::Ok()};
    const th_task_info info = info_of(a);
    if (o.reattach && !(ex.desc.on_can_reattach && ex.desc.on_can_reattach(ex.self, &info))) {
      h.start_status = Status::Failed("kind cannot re-attach this task");
      host_->host_end(a.ref, TaskResult{TH_STATE_FAILED, {}, TH_ERROR_WORKER_ERROR, "orphaned: cannot re-attach"});
      release(h);
      return h;
    }
    host_->host_state(a.ref, TH_STATE_RUNNING, o.reattach ? "re-attached" : "started");
    h.start_status = call([&](th_error_buf* err) { return ex.desc.on_start(ex.self, &info, err); });
    if (!h.start_status.ok()) {
      const th_error_code code =
          h.start_status.code == TH_INVALID_ARGUMENT ? TH_ERROR_INVALID_INPUT : TH_ERROR_COMPONENT_FAILED;
      host_->host_end(a.ref, TaskResult{TH_STATE_FAILED, {}, code, "start failed: " + h.start_status.message});
      release(h);
    }
    return h;
  }

  // Re-attach `previous` on this plugin: a new attempt (+1) of the same task with its last checkpoint.
  // The previous attempt is superseded (its writes answer TH_STALE_ATTEMPT); it is not released here.
  TaskHandle reattach(const TaskHandle& previous) {
    StartOptions o;
    o.kind = previous.kind;
    o.input = previous.input;
    o.attempt = previous.attempt + 1;
    o.id = previous.id;
    o.reattach = true;
    o.checkpoint = view(previous).checkpoint;
    return start(std::move(o));
  }

  // Steering text/data, or the answer to request `in_reply_to`.
  Status deliver(const TaskHandle& t, std::string text, std::string data = {}, std::string in_reply_to = {}) {
    const TaskView v = view(t);
    if (v.terminal() || v.released || v.superseded) return Status{TH_TASK_ENDED, "task '" + t.id + "' already ended"};
    if (!in_reply_to.empty() && v.pending_request != in_reply_to) {
      return Status::InvalidArgument("task '" + t.id + "' is not waiting for input '" + in_reply_to + "'");
    }
    Executor& ex = executor(t.kind);
    if (ex.desc.on_deliver == nullptr) return Status::Unsupported("kind '" + t.kind + "' does not take steering");
    const std::string message_id = "msg-" + std::to_string(next_message_++);
    th_message m{};
    m.struct_size = sizeof(m);
    m.message_id = message_id.c_str();
    m.text = text.c_str();
    m.data = th_bytes{reinterpret_cast<const uint8_t*>(data.data()), data.size()};
    m.in_reply_to = in_reply_to.c_str();
    const Attempt a = attempt(t);
    const th_task_info info = info_of(a);
    Status s = call([&](th_error_buf* err) { return ex.desc.on_deliver(ex.self, &info, &m, err); });
    if (s.ok() && !in_reply_to.empty())
      host_->host_state(t.ref, TH_STATE_RUNNING, "input '" + in_reply_to + "' answered");
    return s;
  }
  Status answer(const TaskHandle& t, std::string request_id, std::string text, std::string data = {}) {
    return deliver(t, std::move(text), std::move(data), std::move(request_id));
  }

  Status cancel(const TaskHandle& t) {
    const TaskView v = view(t);
    if (v.terminal() || v.released) return Status{TH_TASK_ENDED, "task '" + t.id + "' already ended"};
    Executor& ex = executor(t.kind);
    const Attempt a = attempt(t);
    const th_task_info info = info_of(a);
    return call([&](th_error_buf* err) { return ex.desc.on_cancel(ex.self, &info, err); });
  }

  Status reconcile(const TaskHandle& t) {
    Executor& ex = executor(t.kind);
    if (ex.desc.on_reconcile == nullptr) return Status::Ok();
    const Attempt a = attempt(t);
    const th_task_info info = info_of(a);
    return call([&](th_error_buf* err) { return ex.desc.on_reconcile(ex.self, &info, err); });
  }

  bool can_reattach(const TaskHandle& t) {
    Executor& ex = executor(t.kind);
    if (ex.desc.on_can_reattach == nullptr) return false;
    const Attempt a = attempt(t);
    const th_task_info info = info_of(a);
    return ex.desc.on_can_reattach(ex.self, &info) != 0;
  }

  // Let go of a running task without ending it; on success the attempt is released from the executor
  // (on_release), and reattach(t) can resume it from its last checkpoint.
  Status detach(const TaskHandle& t) {
    Executor& ex = executor(t.kind);
    if (ex.desc.on_detach == nullptr) return Status::Unsupported("kind '" + t.kind + "' cannot detach tasks");
    const Attempt a = attempt(t);
    const th_task_info info = info_of(a);
    Status s = call([&](th_error_buf* err) { return ex.desc.on_detach(ex.self, &info, err); });
    if (s.ok()) release(t);
    return s;
  }

  // on_release for this attempt (once); every later write for it answers TH_TASK_ENDED.
  void release(const TaskHandle& t) {
    Attempt a;
    {
      std::lock_guard lock(mu_);
      auto it = attempts_.find(t.ref);
      if (it == attempts_.end() || it->second.released) return;
      it->second.released = true;
      a = it->second;
    }
    host_->close(t.ref);  // first: a write racing the release is refused, never half-applied
    Executor& ex = executor(t.kind);
    const th_task_info info = info_of(a);
    if (ex.desc.on_release) ex.desc.on_release(ex.self, &info);
  }

  // Waits for a terminal state; then releases the attempt. nullopt if `timeout` passed first.
  std::optional<TaskResult> wait_terminal(const TaskHandle& t,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    if (!host_->wait(
            t.ref, [](const TaskView& v) { return v.terminal(); }, timeout))
      return std::nullopt;
    release(t);
    return view(t).result;
  }
  bool wait_state(const TaskHandle& t, th_task_state state,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return host_->wait(
        t.ref, [state](const TaskView& v) { return v.state == state; }, timeout);
  }
  bool wait_until(const TaskHandle& t, const std::function<bool(const TaskView&)>& ready,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return host_->wait(t.ref, ready, timeout);
  }

  TaskView view(const TaskHandle& t) const {
    std::optional<TaskView> v = host_->view(t.ref);
    if (!v) throw std::invalid_argument("unknown task handle");
    return *v;
  }
  std::vector<Event> events(const TaskHandle& t) const { return view(t).events; }
  th_task_state state(const TaskHandle& t) const { return view(t).state; }

 private:
  struct Executor {
    th_kind_descriptor desc{};  // zero-filled past the plugin's struct_size
    th_executor* self = nullptr;
  };
  struct Attempt {
    std::string id, kind, input, checkpoint;
    uint32_t attempt = 1;
    bool reattach = false;
    bool released = false;
    th_task_ref ref = 0;
  };

  static std::string dlerror_text() {
    const char* e = ::dlerror();
    return e ? e : "unknown error";
  }
  static std::string name_of(const th_plugin_descriptor* d) {
    return (d && d->struct_size >= offsetof(th_plugin_descriptor, name) + sizeof(d->name) && d->name) ? d->name : "";
  }
  static internal::ManifestFields parse_manifest(const std::string& text, const std::string& where) {
    std::string error;
    std::optional<internal::ManifestFields> m = internal::parse_manifest_text(text, &error);
    if (!m) throw std::runtime_error(where + ": " + error);
    return *m;
  }
  static void check_abi(uint32_t major, uint32_t minor, const std::string& where) {
    if (major == TASKHOST_ABI_MAJOR && minor <= TASKHOST_ABI_MINOR) return;
    throw std::runtime_error(where + ": plugin ABI " + std::to_string(major) + "." + std::to_string(minor) +
                             "; this test kit accepts ABI " + std::to_string(TASKHOST_ABI_MAJOR) + ".0 to " +
                             std::to_string(TASKHOST_ABI_MAJOR) + "." + std::to_string(TASKHOST_ABI_MINOR));
  }

  template <typename Fn>
  static Status call(Fn&& fn) {
    std::array<char, 512> text{};
    th_error_buf err{sizeof(th_error_buf), text.data(), text.size()};
    const th_status s = fn(&err);
    text.back() = '\0';
    return Status{s, s == TH_OK ? std::string() : std::string(text.data())};
  }

  // Validates `d` as the host does and creates one executor per kind.
  void adopt(const th_plugin_descriptor* d, const std::string& where) {
    if (d == nullptr) throw std::runtime_error(where + ": entry point returned NULL");
    if (d->struct_size < offsetof(th_plugin_descriptor, kinds) + sizeof(d->kinds)) {
      throw std::runtime_error(where + ": th_plugin_descriptor.struct_size is too small");
    }
    check_abi(d->abi_major, d->abi_minor, where + ": descriptor");
    if (!d->name || !*d->name || !d->version || !*d->version)
      throw std::runtime_error(where + ": empty name or version");
    if (d->kind_count == 0 || d->kinds == nullptr) throw std::runtime_error(where + ": declares no kinds");
    descriptor_ = d;
    constexpr size_t kMinimum = offsetof(th_kind_descriptor, on_detach) + sizeof(th_kind_descriptor::on_detach);
    for (size_t i = 0; i < d->kind_count; ++i) {
      const th_kind_descriptor* k = d->kinds[i];
      if (k == nullptr || k->struct_size < kMinimum)
        throw std::runtime_error(where + ": kind descriptor too small or NULL");
      Executor ex;
      std::memcpy(&ex.desc, k, std::min<size_t>(k->struct_size, sizeof(ex.desc)));
      ex.desc.struct_size = static_cast<uint32_t>(std::min<size_t>(k->struct_size, sizeof(ex.desc)));
      const std::string name = ex.desc.kind ? ex.desc.kind : "";
      if (name.empty()) throw std::runtime_error(where + ": a kind has no name");
      if (executors_.count(name)) throw std::runtime_error(where + ": kind '" + name + "' declared twice");
      if (!ex.desc.on_create_executor || !ex.desc.on_destroy_executor || !ex.desc.on_start || !ex.desc.on_cancel) {
        throw std::runtime_error(where + ": kind '" + name + "' lacks a required function");
      }
      if ((ex.desc.on_can_reattach == nullptr) != (ex.desc.on_detach == nullptr)) {
        throw std::runtime_error(where + ": kind '" + name + "' provides half of the re-attach group");
      }
      executors_[name] = ex;
    }
    if (manifest_) {
      const std::vector<std::string> k = kinds();
      std::set<std::string> listed(manifest_->kinds.begin(), manifest_->kinds.end());
      if (manifest_->name != d->name || manifest_->version != d->version || manifest_->abi_major != d->abi_major ||
          manifest_->abi_minor != d->abi_minor || listed != std::set<std::string>(k.begin(), k.end()) ||
          listed.size() != manifest_->kinds.size()) {
        throw std::runtime_error(where + ": the manifest disagrees with the descriptor");
      }
    }
    for (auto& entry : executors_) {
      const std::string& name = entry.first;
      Executor& ex = entry.second;  // not a structured binding: clang 14 cannot capture those
      Status s = call([&](th_error_buf* err) { return ex.desc.on_create_executor(host_->api(), &ex.self, err); });
      if (!s.ok() || ex.self == nullptr) {
        ex.self = nullptr;
        throw std::runtime_error(where + ": on_create_executor of '" + name + "' failed: " + s.message);
      }
    }
  }

  Executor& executor(const std::string& kind) {
    auto it = executors_.find(kind);
    if (it == executors_.end()) throw std::invalid_argument("the plugin has no kind '" + kind + "'");
    return it->second;
  }
  const Executor& executor(const std::string& kind) const { return const_cast<PluginUnderTest*>(this)->executor(kind); }

  Attempt attempt(const TaskHandle& t) const {
    std::lock_guard lock(mu_);
    auto it = attempts_.find(t.ref);
    if (it == attempts_.end()) throw std::invalid_argument("unknown task handle");
    return it->second;
  }

  // The host-owned view of an attempt for one call; points into `a`, which must outlive the call.
  static th_task_info info_of(const Attempt& a) {
    th_task_info info{};
    info.struct_size = sizeof(info);
    info.task = a.ref;
    info.task_id = a.id.c_str();
    info.kind = a.kind.c_str();
    info.attempt = a.attempt;
    info.input = th_bytes{reinterpret_cast<const uint8_t*>(a.input.data()), a.input.size()};
    info.reattach = a.reattach ? 1 : 0;
    info.checkpoint = th_bytes{reinterpret_cast<const uint8_t*>(a.checkpoint.data()), a.checkpoint.size()};
    return info;
  }

  // Cancel what still runs (with a deadline), release every attempt, destroy executors, close the library.
  void teardown() noexcept {
    try {
      std::vector<TaskHandle> open;
      {
        std::lock_guard lock(mu_);
        for (const auto& [ref, a] : attempts_) {
          if (!a.released) open.push_back(TaskHandle{a.id, a.kind, a.attempt, a.ref, a.input, Status::Ok()});
        }
      }
      for (const TaskHandle& t : open) {
        const TaskView v = view(t);
        if (!v.terminal() && !v.superseded) {
          cancel(t);
          if (!host_->wait(
                  t.ref, [](const TaskView& x) { return x.terminal(); }, std::chrono::seconds(2))) {
            host_->host_end(t.ref, TaskResult{TH_STATE_CANCELED, {}, TH_ERROR_CANCELLED, "cancel deadline passed"});
          }
        }
        release(t);
      }
    } catch (...) {
      // A test kit must not throw from a destructor; executors are still destroyed below.
    }
    for (auto& [name, ex] : executors_) {
      if (ex.self) ex.desc.on_destroy_executor(ex.self);
      ex.self = nullptr;
    }
    host_->executors_destroyed();
    if (library_) ::dlclose(library_);
    library_ = nullptr;
  }

  std::unique_ptr<FakeHost> host_ = std::make_unique<FakeHost>();  // outlives everything below
  void* library_ = nullptr;
  const th_plugin_descriptor* descriptor_ = nullptr;
  std::optional<internal::ManifestFields> manifest_;
  std::map<std::string, Executor> executors_;
  mutable std::mutex mu_;
  std::map<th_task_ref, Attempt> attempts_;
  std::atomic<int> next_task_{1};     // start() and deliver() may be called from several threads
  std::atomic<int> next_message_{1};
};

}  // namespace taskhost::testkit
