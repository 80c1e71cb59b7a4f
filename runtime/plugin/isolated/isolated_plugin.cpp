#include "plugin/isolated/isolated_plugin.hpp"

#include "common/log.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>

namespace taskhost::plugin::isolated {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A kind as the host sees it: the descriptor this host made for it, whose executor pointer is the Kind.
struct IsolatedPlugin::Kind {
  IsolatedPlugin* plugin = nullptr;
  bool has_release = false;  // the plugin's own on_release, to be called
  std::string kind, description, input_schema, output_schema;
  th_kind_descriptor descriptor{};
};

struct IsolatedPlugin::Pending {
  std::condition_variable done_cv;
  bool done = false;
  v1::PluginReply reply;
  th_task_ref task = 0;      // whose call it is (0: none)
  const char* what = "";     // call_name(): named in the task's failure if the process dies during it
};

namespace {

// A process that ran this long before it ended is not crash-looping: the next restart waits the least.
constexpr auto kStableRun = std::chrono::seconds(60);
// Failed starts in a row after a crash before the tasks waiting to be re-attached fail.
constexpr int kRestartsAwaited = 3;
// How long a process may take to exit once the host closed its socket (its executors destroyed, the
// plugin's threads joined) before it is killed.
constexpr auto kExitGrace = milliseconds(5'000);
// How long a start that came while the process was down waits for the next one (past the longest
// restart backoff, 10 s, and a default load_timeout, 10 s).
constexpr auto kStartWaitsForProcess = std::chrono::seconds(30);

void fill(v1::TaskInfoFrame& f, const th_task_info* info) {
  f.set_task_ref(info->task);
  if (info->task_id) f.set_task_id(info->task_id);
  if (info->kind) f.set_kind(info->kind);
  f.set_attempt(info->attempt);
  if (info->input.data) f.set_input(reinterpret_cast<const char*>(info->input.data), info->input.size);
  f.set_reattach(info->reattach != 0);
  if (info->checkpoint.data) f.set_checkpoint(reinterpret_cast<const char*>(info->checkpoint.data), info->checkpoint.size);
}

const char* text_or_null(bool present, const std::string& s) { return present ? s.c_str() : nullptr; }

const char* call_name(const v1::PluginCall& call) {
  switch (call.call_case()) {
    case v1::PluginCall::kStart: return "start";
    case v1::PluginCall::kCancel: return "cancel";
    case v1::PluginCall::kDeliver: return "deliver";
    case v1::PluginCall::kReconcile: return "reconcile";
    case v1::PluginCall::kCanReattach: return "can_reattach";
    case v1::PluginCall::kDetach: return "detach";
    case v1::PluginCall::kRelease: return "release";
    default: return "plugin";
  }
}

}  // namespace

// The C functions in the descriptors this host makes: each turns a call into a frame. Calls for a task
// must reach the process that started it; for one the current process does not run (its process died:
// lost() failed it, or it waits to be re-attached), each answers as the host would for an ended task,
// without a frame.
struct Trampolines {
  using Live = IsolatedPlugin::Live;
  static IsolatedPlugin::Kind& kind(th_executor* self) { return *reinterpret_cast<IsolatedPlugin::Kind*>(self); }

  // The executors are made and destroyed in the process: the host's descriptor hands out a Kind as
  // executor (IsolatedPlugin::executor) and never calls a factory.
  static th_status create(const th_host_api*, th_executor**, th_error_buf* err) {
    return th_error_set(err, TH_UNSUPPORTED, "an isolated plugin's executors are made in its process");
  }
  static void destroy(th_executor*) {}  // the process destroys its executors when it exits

  static th_status start(th_executor* self, const th_task_info* info, th_error_buf* err) {
    v1::ChildFrame frame;
    fill(*frame.mutable_call()->mutable_start(), info);
    return *kind(self).plugin->call(frame, info->task, Live::starts, err, nullptr);
  }

  static th_status cancel(th_executor* self, const th_task_info* info, th_error_buf* err) {
    v1::ChildFrame frame;
    fill(*frame.mutable_call()->mutable_cancel(), info);
    return kind(self).plugin->call(frame, info->task, Live::required, err, nullptr).value_or(TH_OK);
  }

  static th_status deliver(th_executor* self, const th_task_info* info, const th_message* message, th_error_buf* err) {
    v1::ChildFrame frame;
    v1::DeliverFrame& d = *frame.mutable_call()->mutable_deliver();
    fill(*d.mutable_task(), info);
    if (message->message_id) d.set_message_id(message->message_id);
    if (message->text) d.set_text(message->text);
    if (message->data.data) d.set_data(reinterpret_cast<const char*>(message->data.data), message->data.size);
    if (message->in_reply_to) d.set_in_reply_to(message->in_reply_to);
    const auto status = kind(self).plugin->call(frame, info->task, Live::required, err, nullptr);
    return status ? *status : th_error_set(err, TH_FAILED, "the plugin process that ran this task has exited");
  }

  static th_status reconcile(th_executor* self, const th_task_info* info, th_error_buf* err) {
    v1::ChildFrame frame;
    fill(*frame.mutable_call()->mutable_reconcile(), info);
    return kind(self).plugin->call(frame, info->task, Live::required, err, nullptr).value_or(TH_OK);
  }

  // Installed whether or not the plugin has on_release: the task stops being the process's either way.
  static void release(th_executor* self, const th_task_info* info) {
    IsolatedPlugin::Kind& k = kind(self);
    if (!k.has_release) {
      k.plugin->forget(info->task);
      return;
    }
    v1::ChildFrame frame;
    fill(*frame.mutable_call()->mutable_release(), info);
    (void)k.plugin->call(frame, info->task, Live::releases, nullptr, nullptr);
  }

  // Asked before a re-attaching start, so for a task no process runs yet.
  static int32_t can_reattach(th_executor* self, const th_task_info* info) {
    v1::ChildFrame frame;
    fill(*frame.mutable_call()->mutable_can_reattach(), info);
    bool flag = false;
    const auto status = kind(self).plugin->call(frame, info->task, Live::any, nullptr, &flag);
    return status == TH_OK && flag ? 1 : 0;
  }

  static th_status detach(th_executor* self, const th_task_info* info, th_error_buf* err) {
    v1::ChildFrame frame;
    fill(*frame.mutable_call()->mutable_detach(), info);
    const auto status = kind(self).plugin->call(frame, info->task, Live::required, err, nullptr);
    return status ? *status : th_error_set(err, TH_FAILED, "the plugin process that ran this task has exited");
  }
};

IsolatedPlugin::IsolatedPlugin(std::filesystem::path file, ProcessOptions options, int image_fd)
    : file_(std::move(file)), options_(std::move(options)), image_fd_(image_fd) {}

std::unique_ptr<IsolatedPlugin> IsolatedPlugin::open(const std::filesystem::path& file, const std::string& image,
                                                     const PluginManifest& manifest, const ProcessOptions& options,
                                                     std::string* error) {
  std::string why;
  const int fd = image_memfd(image, "taskhost-isolated-" + manifest.name.substr(0, 200), &why);
  if (fd < 0) {
    *error = file.string() + ": " + why;
    return nullptr;
  }
  auto plugin = std::unique_ptr<IsolatedPlugin>(new IsolatedPlugin(file, options, fd));
  plugin->name_ = manifest.name;  // until the process says its own
  return plugin;
}

bool IsolatedPlugin::launch(const th_host_api& host, const HostHooks* hooks, std::string* error) {
  host_ = &host;
  hooks_ = hooks;
  v1::ChildHello hello;
  if (!start_process(false, error, &hello)) return false;
  name_ = hello.name();
  version_ = hello.version();
  for (const v1::KindHello& k : hello.kinds()) {
    auto kind = std::make_unique<Kind>();
    kind->plugin = this;
    kind->kind = k.kind();
    kind->description = k.description();
    kind->input_schema = k.input_schema();
    kind->output_schema = k.output_schema();
    th_kind_descriptor& d = kind->descriptor;
    d.struct_size = sizeof(th_kind_descriptor);
    d.kind = kind->kind.c_str();
    d.encoding = k.encoding();
    d.on_create_executor = Trampolines::create;
    d.on_destroy_executor = Trampolines::destroy;
    d.on_start = Trampolines::start;
    d.on_cancel = Trampolines::cancel;
    // Absent entry points stay absent, so the host answers them with its defaults without a round trip.
    if (k.deliver()) d.on_deliver = Trampolines::deliver;
    if (k.reconcile()) d.on_reconcile = Trampolines::reconcile;
    kind->has_release = k.release();
    d.on_release = Trampolines::release;
    if (k.reattach()) {
      d.on_can_reattach = Trampolines::can_reattach;
      d.on_detach = Trampolines::detach;
    }
    d.description = kind->description.empty() ? nullptr : kind->description.c_str();
    d.input_schema_json = kind->input_schema.empty() ? nullptr : kind->input_schema.c_str();
    d.output_schema_json = kind->output_schema.empty() ? nullptr : kind->output_schema.c_str();
    kind_list_.push_back(&kind->descriptor);
    kinds_.push_back(std::move(kind));
  }
  descriptor_.struct_size = sizeof(th_plugin_descriptor);
  descriptor_.abi_major = hello.abi_major();
  descriptor_.abi_minor = hello.abi_minor();
  descriptor_.name = name_.c_str();
  descriptor_.version = version_.c_str();
  descriptor_.kind_count = kind_list_.size();
  descriptor_.kinds = kind_list_.data();
  return true;
}

IsolatedPlugin::~IsolatedPlugin() {
  std::shared_ptr<FrameSocket> socket;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    socket = socket_;
  }
  wake_.notify_all();
  up_.notify_all();
  if (socket) socket->shutdown_write();  // the process destroys its executors and exits
  if (supervisor_.joinable()) {
    {
      // The supervisor reaps the process once it closed the socket. One that hangs in on_destroy_executor
      // never closes it, so it is killed after kExitGrace. Killed under mu_: the supervisor clears
      // child_pid_ under it before it reaps, so the pid cannot belong to another process by then.
      std::unique_lock lock(mu_);
      if (!wake_.wait_for(lock, kExitGrace, [&] { return supervisor_done_; }) && child_pid_ > 0) {
        log::warn("plugins: {}: the plugin process of '{}' (pid {}) did not exit within {} ms of being asked to "
                  "(an on_destroy_executor that does not return?); killed",
                  file_.string(), name_, child_pid_, kExitGrace.count());
        ::kill(child_pid_, SIGKILL);
      }
    }
    supervisor_.join();
  } else if (process_) {
    (void)process_->reap(kExitGrace);  // never served: it saw the socket close and exits by itself
  }
  ::close(image_fd_);
}

th_executor* IsolatedPlugin::executor(size_t i) const { return reinterpret_cast<th_executor*>(kinds_[i].get()); }

void IsolatedPlugin::serve() {
  supervisor_ = std::thread([this] {
    supervise();
    std::lock_guard lock(mu_);
    supervisor_done_ = true;
    wake_.notify_all();
    up_.notify_all();
  });
}

std::optional<PluginProcessInfo> IsolatedPlugin::process() const {
  std::lock_guard lock(mu_);
  const bool up = socket_ && process_;
  return PluginProcessInfo{up ? process_->pid() : -1, restarts_, up ? std::string() : down_reason_};
}

bool IsolatedPlugin::start_process(bool restart, std::string* error, v1::ChildHello* hello) {
  const std::string prefix = file_.string() + ": ";
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    *error = prefix + "socketpair for the plugin process: " + std::strerror(errno);
    return false;
  }
  auto socket = std::make_shared<FrameSocket>(pair[0]);
  const std::filesystem::path program = options_.program.empty() ? default_plugin_process_program() : options_.program;
  std::string why;
  std::unique_ptr<PluginProcess> process = PluginProcess::spawn(program, pair[1], image_fd_, file_, &why);
  ::close(pair[1]);
  if (!process) {
    *error = prefix + "isolation = \"process\": " + why;
    return false;
  }
  socket->watch_process(process->pidfd());
  set_child_pid(process->pid());
  const int wait_ms = options_.load_timeout.count() > 0 ? static_cast<int>(options_.load_timeout.count()) : -1;
  const auto deadline = Clock::now() + options_.load_timeout;
  for (;;) {
    int left_ms = wait_ms;
    if (wait_ms >= 0) {
      left_ms = static_cast<int>(std::max<int64_t>(
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count(), 0));
    }
    v1::ChildFrame frame;
    const FrameSocket::Received got = socket->receive(frame, &why, left_ms);
    if (got == FrameSocket::Received::frame) {
      if (frame.has_hello()) {
        *hello = std::move(*frame.mutable_hello());
        break;
      }
      handle(frame, *socket);  // what its factories logged while loading
      continue;
    }
    if (got != FrameSocket::Received::closed) ::kill(process->pid(), SIGKILL);
    set_child_pid(-1);
    process->kill_group();
    const std::string how = process->reap(milliseconds(1'000));
    if (got == FrameSocket::Received::timed_out) {
      *error = prefix + "the plugin process did not finish loading the plugin within " +
               std::to_string(options_.load_timeout.count()) + " ms; it was killed";
    } else if (got == FrameSocket::Received::corrupt) {
      *error = prefix + "the plugin process sent " + why + "; it was killed";
    } else {
      *error = prefix + "the plugin process " + how + " before it finished loading the plugin";
    }
    return false;
  }
  // A refusal names the file already, in the words the in-process loader uses. What a first process
  // loaded is checked by the loader (check_descriptor on descriptor()), as an in-process plugin's is.
  std::string problem = hello->error();
  if (problem.empty() && restart && !same_kinds(*hello)) {
    problem = prefix + "the plugin process came back with other kinds than it had";
  }
  if (!problem.empty()) {
    *error = std::move(problem);
    if (hello->error().empty()) ::kill(process->pid(), SIGKILL);  // it loaded, but not what it had
    set_child_pid(-1);
    (void)process->reap(kExitGrace);
    return false;
  }
  // Published at once: a call sees either no process or this one with its own incarnation.
  bool stopping = false;
  {
    std::lock_guard lock(mu_);
    socket_ = socket;
    process_ = std::move(process);
    if (restart) {
      ++incarnation_;
      ++restarts_;
    }
    down_reason_.clear();
    stopping = stopping_;
  }
  up_.notify_all();
  if (stopping) socket->shutdown_write();  // the destructor came while it started: let it exit at once
  return true;
}

bool IsolatedPlugin::same_kinds(const v1::ChildHello& hello) const {
  if (static_cast<size_t>(hello.kinds_size()) != kinds_.size()) return false;
  for (size_t i = 0; i < kinds_.size(); ++i) {
    const v1::KindHello& k = hello.kinds(static_cast<int>(i));
    const Kind& mine = *kinds_[i];
    const th_kind_descriptor& d = mine.descriptor;
    if (k.kind() != mine.kind || k.encoding() != d.encoding || k.deliver() != (d.on_deliver != nullptr) ||
        k.reconcile() != (d.on_reconcile != nullptr) || k.release() != mine.has_release ||
        k.reattach() != (d.on_can_reattach != nullptr)) {
      return false;
    }
  }
  return true;
}

void IsolatedPlugin::supervise() {
  milliseconds backoff = options_.first_backoff;
  for (;;) {
    std::shared_ptr<FrameSocket> socket;
    {
      std::lock_guard lock(mu_);
      socket = socket_;
    }
    const auto started = Clock::now();
    std::string why;
    FrameSocket::Received got;
    for (;;) {
      v1::ChildFrame frame;
      got = socket->receive(frame, &why);
      if (got != FrameSocket::Received::frame) break;
      handle(frame, *socket);
    }
    if (got == FrameSocket::Received::corrupt) {
      log::error("plugins: {}: the plugin process of '{}' sent {}; killing it", file_.string(), name_, why);
      ::kill(process_->pid(), SIGKILL);
    }
    set_child_pid(-1);
    // The process has ended, or broke its socket: what it started (its process group) ends with it.
    process_->kill_group();
    const std::string how = "(pid " + std::to_string(process_->pid()) + ") " + process_->reap(kExitGrace);
    {
      std::lock_guard lock(mu_);
      if (stopping_) {
        socket_.reset();
        return;
      }
    }
    lost(how);
    if (Clock::now() - started >= kStableRun) backoff = options_.first_backoff;
    // Started again until it loads, waiting longer each time it fails. The tasks waiting for it fail after
    // kRestartsAwaited failed starts in a row (one can fail for a passing reason: a load timeout on a busy
    // machine), rather than wait through a backoff that may have grown to max_backoff.
    for (int failed = 0;;) {
      {
        std::unique_lock lock(mu_);
        if (wake_.wait_for(lock, backoff, [&] { return stopping_; })) return;
      }
      backoff = std::min(backoff * 2, options_.max_backoff);
      std::string error;
      v1::ChildHello hello;
      if (!start_process(true, &error, &hello)) {
        log::warn("plugins: restarting the plugin process of '{}' failed: {}; trying again in {} ms", name_, error,
                  backoff.count());
        if (++failed >= kRestartsAwaited) settle_awaiting(error);
        continue;
      }
      log::info("plugins: {}: the plugin process of '{}' runs again (pid {})", file_.string(), name_, process_->pid());
      settle_awaiting({});
      break;
    }
  }
}

void IsolatedPlugin::lost(const std::string& how) {
  std::vector<std::pair<th_task_ref, bool>> orphans;  // with whether its kind can re-attach
  std::map<th_task_ref, std::string> in_flight;  // the tasks whose calls the process was running: suspects
  const std::string reason = "the plugin process of '" + name_ + "' " + how;
  {
    std::lock_guard lock(mu_);
    socket_.reset();  // no call goes out from here on; those in flight are answered below
    down_reason_ = "not started: the plugin process of '" + name_ + "' is being started again (the last one, " + how + ")";
    for (auto it = live_.begin(); it != live_.end();) {
      if (it->second.incarnation == incarnation_) {
        // One that was leaving needs nothing more: the host already ended it or moved it on, and the
        // process that held its state is gone.
        if (!it->second.leaving) orphans.emplace_back(it->first, it->second.reattachable);
        it = live_.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [id, pending] : pending_) {
      if (pending->task == 0) continue;
      std::string& calls = in_flight[pending->task];
      calls += calls.empty() ? pending->what : std::string(", ") + pending->what;
    }
  }
  // Its tasks are settled first, then the calls in flight fail: a task whose start was in flight ends as
  // the others do (WORKER_ERROR, the process's end), not as a start the plugin refused. Each says whether
  // one of its own calls was running then (most likely what crashed), or it only ran beside the crash;
  // such a task, when its kind can re-attach, waits for the next process instead of failing.
  size_t failed = 0;
  for (const auto& [ref, reattachable] : orphans) {
    const auto calls = in_flight.find(ref);
    if (calls == in_flight.end() && reattachable && hooks_ != nullptr) {
      std::string waiting = reason + " while the task ran (none of its calls was running)";
      if (hooks_->task_awaits_process(host_->context, ref, waiting.c_str()) == TH_OK) {
        awaiting_.emplace_back(ref, std::move(waiting));
      }
      continue;
    }
    const std::string message =
        calls != in_flight.end()
            ? reason + " during this task's " + calls->second + " call"
            : reason + " while the task ran (no call of this task was running: another task's call, or a "
                       "thread of the plugin, ended it)";
    fail(ref, message);
    ++failed;
  }
  {
    std::lock_guard lock(mu_);
    for (auto& [id, pending] : pending_) {
      pending->reply.set_status(TH_FAILED);
      pending->reply.set_error(reason);
      pending->done = true;
      pending->done_cv.notify_one();
    }
    pending_.clear();
  }
  log::error("plugins: {}: {}; {} task(s) it ran failed, {} wait to be re-attached; starting it again",
             file_.string(), reason, failed, awaiting_.size());
}

void IsolatedPlugin::fail(th_task_ref ref, const std::string& message) {
  th_result result{};
  result.struct_size = sizeof(result);
  result.state = TH_STATE_FAILED;
  result.error_code = TH_ERROR_WORKER_ERROR;
  result.error_message = message.c_str();
  (void)host_->complete(host_->context, ref, &result);
}

void IsolatedPlugin::settle_awaiting(const std::string& error) {
  std::vector<std::pair<th_task_ref, std::string>> tasks;
  tasks.swap(awaiting_);
  for (const auto& [ref, reason] : tasks) {
    if (error.empty()) {
      // The host re-attaches it (or fails it, saying why); a task that ended meanwhile is left as it is.
      (void)hooks_->reattach_lost_task(host_->context, ref, reason.c_str());
    } else {
      fail(ref, reason + "; the plugin could not be started again (" + error + ")");
    }
  }
}

void IsolatedPlugin::set_child_pid(pid_t pid) {
  std::lock_guard lock(mu_);
  child_pid_ = pid;
}

void IsolatedPlugin::handle(v1::ChildFrame& frame, FrameSocket& socket) {
  if (frame.has_reply()) {
    std::lock_guard lock(mu_);
    const auto it = pending_.find(frame.reply().call_id());
    if (it == pending_.end()) return;
    it->second->reply = std::move(*frame.mutable_reply());
    it->second->done = true;
    it->second->done_cv.notify_one();
    pending_.erase(it);
  } else if (frame.has_sink()) {
    handle_sink(frame.sink(), socket);
  }
}

void IsolatedPlugin::handle_sink(const v1::SinkFrame& sink, FrameSocket& socket) {
  const th_host_api& h = *host_;
  th_host_context* const ctx = h.context;
  const th_task_ref ref = sink.task_ref();
  const auto span = [&](bool present, const std::string& bytes) -> th_bytes {
    if (present) return th_bytes{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
    return th_bytes{nullptr, static_cast<size_t>(sink.null_data_size())};
  };
  th_status status = TH_INVALID_ARGUMENT;
  switch (sink.call_case()) {
    case v1::SinkFrame::kState: {
      const auto& m = sink.state();
      status = h.set_state(ctx, ref, m.state(), text_or_null(m.has_detail(), m.detail()));
      break;
    }
    case v1::SinkFrame::kProgress: {
      const auto& m = sink.progress();
      status = h.progress(ctx, ref, m.current(), m.total(), text_or_null(m.has_unit(), m.unit()),
                          text_or_null(m.has_label(), m.label()));
      break;
    }
    case v1::SinkFrame::kOutput: {
      const auto& m = sink.output();
      status = h.output(ctx, ref, text_or_null(m.has_stream(), m.stream()), span(m.has_delta(), m.delta()));
      break;
    }
    case v1::SinkFrame::kPost: {
      const auto& m = sink.post();
      status = h.post(ctx, ref, text_or_null(m.has_text(), m.text()), span(m.has_data(), m.data()));
      break;
    }
    case v1::SinkFrame::kRequestInput: {
      const auto& m = sink.request_input();
      status = h.request_input(ctx, ref, text_or_null(m.has_request_id(), m.request_id()),
                               text_or_null(m.has_prompt(), m.prompt()),
                               text_or_null(m.has_expected_schema(), m.expected_schema()));
      break;
    }
    case v1::SinkFrame::kArtifact: {
      const auto& m = sink.artifact();
      status = h.append_artifact(ctx, ref, text_or_null(m.has_name(), m.name()),
                                 text_or_null(m.has_media_type(), m.media_type()), text_or_null(m.has_uri(), m.uri()));
      break;
    }
    case v1::SinkFrame::kCheckpoint:
      status = h.checkpoint(ctx, ref, span(sink.null_data_size() == 0, sink.checkpoint()));
      break;
    case v1::SinkFrame::kHeartbeat: {
      const auto& m = sink.heartbeat();
      status = h.heartbeat(ctx, ref, m.fraction(), text_or_null(m.has_status_message(), m.status_message()));
      break;
    }
    case v1::SinkFrame::kComplete: {
      const auto& m = sink.complete();
      if (m.null_result()) {
        status = h.complete(ctx, ref, nullptr);
        break;
      }
      th_result result{};
      result.struct_size = std::min<uint32_t>(m.struct_size(), sizeof(th_result));
      result.state = m.state();
      result.output = span(m.has_output(), m.output());
      result.error_code = m.error_code();
      result.error_message = text_or_null(m.has_error_message(), m.error_message());
      status = h.complete(ctx, ref, &result);
      break;
    }
    case v1::SinkFrame::kLog:
      h.log(ctx, ref, sink.log().level(), text_or_null(sink.log().has_message(), sink.log().message()));
      return;  // a log line answers nothing
    default:
      break;
  }
  if (sink.call_id() == 0) return;
  v1::ChildFrame answer;
  answer.mutable_sink_reply()->set_call_id(sink.call_id());
  answer.mutable_sink_reply()->set_status(status);
  (void)socket.send(answer);
}

std::optional<th_status> IsolatedPlugin::call(v1::ChildFrame& frame, th_task_ref ref, Live live, th_error_buf* err,
                                              bool* flag) {
  Pending pending;
  pending.task = ref;
  pending.what = call_name(frame.call());
  std::shared_ptr<FrameSocket> socket;
  uint64_t id = 0;
  uint64_t incarnation = 0;
  {
    std::unique_lock lock(mu_);
    if (live == Live::starts && !socket_ && !stopping_ && !supervisor_done_) {
      // The process is being started again (a crash): a new task waits for it, as tasks that ran beside
      // the crash do, instead of failing without having run. Bounded: a process that does not come back
      // (its backoff is at most 10 s, its load at most load_timeout) fails the start with why.
      up_.wait_for(lock, kStartWaitsForProcess, [&] { return socket_ || stopping_ || supervisor_done_; });
    }
    if (live == Live::required || live == Live::releases) {
      // Checked here, with the frame's destination: a process started since must not get a call for a
      // task it never started.
      const auto it = live_.find(ref);
      if (!socket_ || it == live_.end() || it->second.incarnation != incarnation_) return std::nullopt;
      if (live == Live::required && it->second.leaving) return std::nullopt;
      if (live == Live::releases) live_.erase(it);
    }
    if (!socket_) return th_error_set(err, TH_FAILED, down_reason_.c_str());
    id = ++next_call_;
    pending_[id] = &pending;
    socket = socket_;
    incarnation = incarnation_;
    // Before it goes out: a crash during it fails the task.
    if (live == Live::starts) live_[ref] = LiveTask{incarnation, reattachable(frame.call().start().kind())};
  }
  frame.mutable_call()->set_call_id(id);
  const bool sent = socket->send(frame);
  std::unique_lock lock(mu_);
  if (!sent && !pending.done) {
    // The process is gone (lost() will answer the other calls) or the frame was too large to send.
    pending_.erase(id);
    pending.done = true;
    pending.reply.set_status(TH_FAILED);
    pending.reply.set_error("the call could not be sent to the plugin process of '" + name_ + "'");
  }
  if (options_.call_timeout.count() > 0 &&
      !pending.done_cv.wait_for(lock, options_.call_timeout, [&] { return pending.done; })) {
    // Hung: the process that has the call is killed (under mu_, so child_pid_ is not yet reaped), and
    // lost() then answers this call and fails that process's tasks.
    if (incarnation_ == incarnation && child_pid_ > 0) {
      log::error("plugins: {}: a {} call of the plugin process of '{}' (pid {}) did not return within {} ms; "
                 "killing the process",
                 file_.string(), call_name(frame.call()), name_, child_pid_, options_.call_timeout.count());
      ::kill(child_pid_, SIGKILL);
    }
  }
  pending.done_cv.wait(lock, [&] { return pending.done; });
  const th_status status = pending.reply.status();
  // A task whose start failed, or that was detached, is no longer the process's to run; it stays in live_
  // until its release, which the host makes next and which must reach the process as it reaches an
  // in-process plugin (the plugin frees the task's state there).
  if ((live == Live::starts && status != TH_OK) || (frame.call().has_detach() && status == TH_OK)) {
    const auto it = live_.find(ref);
    if (it != live_.end() && it->second.incarnation == incarnation) it->second.leaving = true;
  }
  if (flag) *flag = pending.reply.flag();
  // Thrown on here, as the in-process call would have: the router fails the task the same way.
  if (pending.reply.threw()) throw std::runtime_error(pending.reply.error());
  if (!pending.reply.error().empty()) (void)th_error_set(err, TH_OK, pending.reply.error().c_str());
  return status;
}

bool IsolatedPlugin::reattachable(const std::string& kind) const {
  for (const auto& k : kinds_) {
    if (k->kind == kind) return k->descriptor.on_can_reattach != nullptr;
  }
  return false;
}

void IsolatedPlugin::forget(th_task_ref ref) {
  std::lock_guard lock(mu_);
  live_.erase(ref);
}

}  // namespace taskhost::plugin::isolated
