// The host's side of a plugin running in a process of its own (isolation = "process").
//
// To the rest of the host it is just another plugin behind the C ABI: from the process's hello it makes a
// th_plugin_descriptor (which the loader checks with check_descriptor, as any plugin's) whose kinds'
// functions turn each call into a PluginCall frame and wait for the PluginReply, so the router,
// KindExecutor and Generation work unchanged. The plugin's sink calls arrive as SinkFrames and are
// made on the generation's own host table, exactly as the plugin would have made them in-process.
//
// What isolation buys: a plugin that crashes (abort, SIGSEGV, exit) ends its process, not the host. The
// supervisor thread sees the socket close, answers the calls in flight TH_FAILED, and starts the plugin
// again with a growing backoff (100 ms doubling to 10 s; back to 100 ms after it ran for a minute). Calls
// made while it is down fail with the reason. Other plugins and their tasks never notice.
//
// The tasks that process was running: a task one of whose calls was in flight (most likely what crashed
// it) fails (WORKER_ERROR, naming how the process ended and the call). A task that only ran beside the
// crash, of a kind that can re-attach, is handed back to the host once the plugin runs again
// (HostHooks::reattach_lost_task: the host re-attaches it with its last checkpoint, or fails it), and
// fails if the plugin cannot be started again (three tries in a row). Any other task fails at once.
//
// Thread rule: the trampolines are safe from any thread, like any plugin's entry points; calls for one task
// arrive serialized (the router's strand) and are answered in order. Sink frames are handled on the
// supervisor thread, in the order the plugin sent them. Ownership: owns the process, the socket and the
// supervisor; the destructor closes the socket, waits for the process to exit (its executors destroyed,
// its threads joined) and kills it if it does not.
#pragma once

#include "plugin/host_scope.hpp"
#include "plugin/isolated/frame_socket.hpp"
#include "plugin/isolated/plugin_process.hpp"
#include "plugin/isolated/process_options.hpp"
#include "plugin/loaded_code.hpp"
#include "plugin/manifest.hpp"

#include <taskhost/plugin.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace taskhost::plugin::isolated {

class IsolatedPlugin final : public LoadedCode {
 public:
  // Readies `image` (the bytes of `file`, already inspected as `manifest`) for plugin processes. Null with
  // `error` ("FILE: reason") when it cannot.
  static std::unique_ptr<IsolatedPlugin> open(const std::filesystem::path& file, const std::string& image,
                                              const PluginManifest& manifest, const ProcessOptions& options,
                                              std::string* error);
  ~IsolatedPlugin() override;

  // Starts the plugin process and waits for its hello; from then on its sink calls are made on `host`
  // (which must outlive this object: the generation's scoped table), those of its factories included.
  // False with `error` ("FILE: reason") when the process cannot start, refuses the plugin (its reason, as
  // in-process), or dies before it answered.
  // `hooks` (may be null: tasks then fail with their process, none is re-attached) outlive this object too.
  bool launch(const th_host_api& host, const HostHooks* hooks, std::string* error);

  // What the process loaded, as a C-ABI descriptor of this host's making (for check_descriptor, as an
  // in-process plugin's), and each kind's executor.
  const th_plugin_descriptor& descriptor() const { return descriptor_; }
  th_executor* executor(size_t i) const;

  // Supervises the process from now on: a crash fails its tasks and starts it again. Called once, after
  // launch() and before any task call.
  void serve();

  std::optional<PluginProcessInfo> process() const override;

 private:
  struct Kind;
  struct Pending;
  friend struct Trampolines;

  IsolatedPlugin(std::filesystem::path file, ProcessOptions options, int image_fd);

  // Starts a process (the first, or again after a crash) and reads its hello. On success `socket_` and
  // `process_` are the new ones, published together with the new incarnation.
  bool start_process(bool restart, std::string* error, v1::ChildHello* hello);
  bool same_kinds(const v1::ChildHello& hello) const;  // as the first process had them
  void supervise();
  // A frame from the process on `socket` (answers go back on it). Supervisor thread, or launch's.
  void handle(v1::ChildFrame& frame, FrameSocket& socket);
  void handle_sink(const v1::SinkFrame& sink, FrameSocket& socket);
  void set_child_pid(pid_t pid);
  // The process ended (`how`): calls in flight fail, its tasks fail or wait for the next process
  // (awaiting_). Supervisor thread only.
  void lost(const std::string& how);
  // The next process is up (`error` empty) or could not be started: the tasks awaiting it go back to the
  // host to be re-attached, or fail. Supervisor thread only.
  void settle_awaiting(const std::string& error);
  bool reattachable(const std::string& kind) const;  // its kinds_ entry has on_can_reattach
  void fail(th_task_ref ref, const std::string& message);  // ends the task failed: WORKER_ERROR

  // How a call relates to the task's place in the current process.
  enum class Live {
    any,       // no task of its own yet (can_reattach)
    starts,    // start: the task is the process's from before the frame goes out
    required,  // the task must be the current process's, else no frame and nullopt
    releases,  // as required, and the task stops being the process's
  };
  // One call into the process for task `ref`; nullopt when `live` required a task it does not run.
  std::optional<th_status> call(v1::ChildFrame& frame, th_task_ref ref, Live live, th_error_buf* err, bool* flag);
  void forget(th_task_ref ref);

  const std::filesystem::path file_;
  std::string name_, version_;  // as the first process said (launch), checked against the manifest
  const ProcessOptions options_;
  const int image_fd_;  // the sealed image, kept for restarts
  std::vector<std::unique_ptr<Kind>> kinds_;
  std::vector<const th_kind_descriptor*> kind_list_;  // descriptor_.kinds
  th_plugin_descriptor descriptor_{};
  const th_host_api* host_ = nullptr;  // set by launch(), before the first process starts
  const HostHooks* hooks_ = nullptr;   // likewise
  // Tasks that ran beside a crash and wait for the next process, with why they lost the last one.
  // Supervisor thread only.
  std::vector<std::pair<th_task_ref, std::string>> awaiting_;

  mutable std::mutex mu_;
  std::condition_variable wake_;                   // the supervisor's backoff, cut short by the destructor
  // A process is up again (or none will come: stopping, or the supervisor ended). Starts that came while
  // it was down wait on it, up to kStartWaitsForProcess.
  std::condition_variable up_;
  std::shared_ptr<FrameSocket> socket_;            // guarded by mu_; null while the process is down
  std::unique_ptr<PluginProcess> process_;         // supervisor's (launch's before serve)
  uint64_t incarnation_ = 1;                       // guarded by mu_
  uint64_t restarts_ = 0;                          // guarded by mu_
  std::string down_reason_;                        // guarded by mu_
  uint64_t next_call_ = 0;                         // guarded by mu_
  std::unordered_map<uint64_t, Pending*> pending_;           // guarded by mu_: calls awaiting a reply
  struct LiveTask {
    uint64_t incarnation = 0;  // of the process that started it
    bool reattachable = false;  // its kind can re-attach
    // Its start failed, or it was detached: no longer the process's to run (a crash neither fails nor
    // re-attaches it, and no call but its release reaches the process), but the release the host makes
    // next still goes to the process, as in-process it reaches the plugin.
    bool leaving = false;
  };
  std::unordered_map<th_task_ref, LiveTask> live_;           // guarded by mu_: the tasks processes run
  bool stopping_ = false;                                    // guarded by mu_
  bool supervisor_done_ = false;                             // guarded by mu_
  pid_t child_pid_ = -1;  // guarded by mu_: a process started and not yet being reaped (safe to kill)
  std::thread supervisor_;
};

}  // namespace taskhost::plugin::isolated
