#include "plugin/isolated/child_side.hpp"

#include "plugin/file_bytes.hpp"
#include "plugin/isolated/frame_socket.hpp"
#include "plugin/isolated/plugin_process.hpp"
#include "plugin/loader.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <stdexcept>
#include <mutex>
#include <thread>
#include <vector>

namespace taskhost::plugin::isolated {
namespace {

// Calls for different tasks run concurrently in-process, and the host's pool grows while calls block;
// so here: a few threads wait for calls, and a call finding none idle gets a new one, up to a bound.
constexpr size_t kIdleCallThreads = 4;
constexpr size_t kMaxCallThreads = 256;

class CallThreads {
 public:
  ~CallThreads() { join(); }

  void post(std::function<void()> call) {
    std::unique_lock lock(mu_);
    queue_.push_back(std::move(call));
    if (idle_ == 0 && threads_.size() < kMaxCallThreads) {
      threads_.emplace_back([this] { run(); });
    } else {
      cv_.notify_one();
    }
  }

  // Runs what was posted, then stops every thread.
  void join() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return;  // stopping, and nothing left
      std::function<void()> call = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      call();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  std::vector<std::thread> threads_;         // guarded by mu_ (post), then join()'s
  size_t idle_ = 0;                          // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
};

// A sink call too large for one frame (past kMaxFrameBytes; the host's payload limit is far lower unless
// raised): a completion still ends the task, FAILED and saying why, as the host does with an output over
// its limit; any other call is refused. True when `sink` now fits.
bool fit_frame_limit(v1::SinkFrame& sink) {
  if (!sink.has_complete()) return false;
  v1::SinkComplete& c = *sink.mutable_complete();
  const size_t size = c.output().size();
  c.Clear();
  c.set_struct_size(sizeof(th_result));
  c.set_state(TH_STATE_FAILED);
  c.set_error_code(TH_ERROR_WORKER_ERROR);  // as the host ends an output over its own limit
  c.set_error_message("the task's output of " + std::to_string(size) +
                      " bytes is larger than a plugin process may send in one frame (" +
                      std::to_string(kMaxFrameBytes) + " bytes)");
  return true;
}

class Child {
 public:
  FrameSocket socket{kChildSocketFd};

  // One sink call: send it, wait for the host's answer. Once the host has closed the socket it answers
  // TH_TASK_ENDED without sending: the host closes it when it unloads the plugin, after the plugin's
  // tasks ended or moved on, or when it exits, and either way nothing more is written for them. That is
  // what the host answers a thread writing for an ended task in-process, and it tells the plugin to stop
  // (TH_FAILED would invite a retry, which holds up the destroy joining that thread). Calls already sent
  // when the host left get TH_FAILED (host_gone): whether the host wrote them is unknown.
  th_status sink(v1::ChildFrame& frame) {
    Waiter waiter;
    uint64_t id = 0;
    {
      std::lock_guard lock(mu_);
      if (host_gone_) return TH_TASK_ENDED;
      id = ++next_id_;
      waiters_[id] = &waiter;
    }
    frame.mutable_sink()->set_call_id(id);
    if (frame.ByteSizeLong() > kMaxFrameBytes && !fit_frame_limit(*frame.mutable_sink())) {
      std::lock_guard lock(mu_);
      waiters_.erase(id);
      return TH_INVALID_ARGUMENT;
    }
    if (!socket.send(frame)) {
      std::lock_guard lock(mu_);
      waiters_.erase(id);
      return TH_FAILED;
    }
    std::unique_lock lock(mu_);
    waiter.cv.wait(lock, [&] { return waiter.done; });
    return waiter.status;
  }

  void answered(const v1::SinkReply& reply) {
    std::lock_guard lock(mu_);
    const auto it = waiters_.find(reply.call_id());
    if (it == waiters_.end()) return;
    it->second->status = reply.status();
    it->second->done = true;
    it->second->cv.notify_one();
    waiters_.erase(it);
  }

  void host_gone() {
    std::lock_guard lock(mu_);
    host_gone_ = true;
    for (auto& [id, waiter] : waiters_) {
      waiter->status = TH_FAILED;
      waiter->done = true;
      waiter->cv.notify_one();
    }
    waiters_.clear();
  }

 private:
  struct Waiter {
    std::condition_variable cv;
    bool done = false;
    th_status status = TH_FAILED;
  };
  std::mutex mu_;
  uint64_t next_id_ = 0;
  bool host_gone_ = false;
  std::map<uint64_t, Waiter*> waiters_;
};

Child* g_child = nullptr;  // the process has exactly one; the sink functions below reach it here



// ---- the sink the plugin gets: each call becomes a frame -----------------------------------------------

// Fills an optional bytes field from a plugin span; {NULL, size} is passed on as null_data_size.
template <typename Setter>
void set_span(v1::SinkFrame& sink, th_bytes span, Setter&& set) {
  if (span.data != nullptr) {
    set(std::string(reinterpret_cast<const char*>(span.data), span.size));
  } else if (span.size != 0) {
    sink.set_null_data_size(span.size);
  }
}

v1::SinkFrame& sink_of(v1::ChildFrame& frame, th_task_ref task) {
  v1::SinkFrame& sink = *frame.mutable_sink();
  sink.set_task_ref(task);
  return sink;
}

th_status child_set_state(th_host_context*, th_task_ref task, th_task_state state, const char* detail) {
  v1::ChildFrame frame;
  auto& m = *sink_of(frame, task).mutable_state();
  m.set_state(state);
  if (detail) m.set_detail(detail);
  return g_child->sink(frame);
}

th_status child_progress(th_host_context*, th_task_ref task, double current, double total, const char* unit,
                         const char* label) {
  v1::ChildFrame frame;
  auto& m = *sink_of(frame, task).mutable_progress();
  m.set_current(current);
  m.set_total(total);
  if (unit) m.set_unit(unit);
  if (label) m.set_label(label);
  return g_child->sink(frame);
}

th_status child_output(th_host_context*, th_task_ref task, const char* stream, th_bytes delta) {
  v1::ChildFrame frame;
  v1::SinkFrame& sink = sink_of(frame, task);
  auto& m = *sink.mutable_output();
  if (stream) m.set_stream(stream);
  set_span(sink, delta, [&](std::string b) { m.set_delta(std::move(b)); });
  return g_child->sink(frame);
}

th_status child_post(th_host_context*, th_task_ref task, const char* text, th_bytes data) {
  v1::ChildFrame frame;
  v1::SinkFrame& sink = sink_of(frame, task);
  auto& m = *sink.mutable_post();
  if (text) m.set_text(text);
  set_span(sink, data, [&](std::string b) { m.set_data(std::move(b)); });
  return g_child->sink(frame);
}

th_status child_request_input(th_host_context*, th_task_ref task, const char* request_id, const char* prompt,
                              const char* expected_schema_json) {
  v1::ChildFrame frame;
  auto& m = *sink_of(frame, task).mutable_request_input();
  if (request_id) m.set_request_id(request_id);
  if (prompt) m.set_prompt(prompt);
  if (expected_schema_json) m.set_expected_schema(expected_schema_json);
  return g_child->sink(frame);
}

th_status child_append_artifact(th_host_context*, th_task_ref task, const char* name, const char* media_type,
                                const char* uri) {
  v1::ChildFrame frame;
  auto& m = *sink_of(frame, task).mutable_artifact();
  if (name) m.set_name(name);
  if (media_type) m.set_media_type(media_type);
  if (uri) m.set_uri(uri);
  return g_child->sink(frame);
}

th_status child_checkpoint(th_host_context*, th_task_ref task, th_bytes state) {
  v1::ChildFrame frame;
  v1::SinkFrame& sink = sink_of(frame, task);
  sink.set_checkpoint("");  // the call is a checkpoint, also when its span is {NULL, size}
  set_span(sink, state, [&](std::string b) { sink.set_checkpoint(std::move(b)); });
  return g_child->sink(frame);
}

th_status child_heartbeat(th_host_context*, th_task_ref task, double fraction, const char* status_message) {
  v1::ChildFrame frame;
  auto& m = *sink_of(frame, task).mutable_heartbeat();
  m.set_fraction(fraction);
  if (status_message) m.set_status_message(status_message);
  return g_child->sink(frame);
}

th_status child_complete(th_host_context*, th_task_ref task, const th_result* result) {
  v1::ChildFrame frame;
  v1::SinkFrame& sink = sink_of(frame, task);
  auto& m = *sink.mutable_complete();
  if (result == nullptr) {
    m.set_null_result(true);
    return g_child->sink(frame);
  }
  // Only the fields inside the plugin's struct_size are read; the host checks the size itself.
  m.set_struct_size(result->struct_size);
  if (TH_HAS_FIELD(result, th_result, state)) m.set_state(result->state);
  if (TH_HAS_FIELD(result, th_result, output)) {
    set_span(sink, result->output, [&](std::string b) { m.set_output(std::move(b)); });
  }
  if (TH_HAS_FIELD(result, th_result, error_code)) m.set_error_code(result->error_code);
  if (TH_HAS_FIELD(result, th_result, error_message) && result->error_message) {
    m.set_error_message(result->error_message);
  }
  return g_child->sink(frame);
}

void child_log(th_host_context*, th_task_ref task, int32_t level, const char* message) {
  v1::ChildFrame frame;
  auto& m = *sink_of(frame, task).mutable_log();
  m.set_level(level);
  if (message) m.set_message(message);
  (void)g_child->socket.send(frame);  // answers nothing: not waited for
}

th_host_api child_host_api() {
  th_host_api api{};
  api.struct_size = sizeof(api);
  api.abi_major = TASKHOST_ABI_MAJOR;
  api.abi_minor = TASKHOST_ABI_MINOR;
  api.context = nullptr;
  api.set_state = child_set_state;
  api.progress = child_progress;
  api.output = child_output;
  api.post = child_post;
  api.request_input = child_request_input;
  api.append_artifact = child_append_artifact;
  api.checkpoint = child_checkpoint;
  api.heartbeat = child_heartbeat;
  api.complete = child_complete;
  api.log = child_log;
  return api;
}

// ---- calls from the host ------------------------------------------------------------------------------

th_bytes span_of(const std::string& s) { return th_bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TaskCall task_call(const v1::TaskInfoFrame& info) {
  TaskCall call;
  call.task = info.task_ref();
  call.task_id = info.task_id().c_str();
  call.kind = info.kind().c_str();
  call.attempt = info.attempt();
  call.input = span_of(info.input());
  call.reattach = info.reattach() ? 1 : 0;
  call.checkpoint = span_of(info.checkpoint());
  return call;
}

const v1::TaskInfoFrame& task_of(const v1::PluginCall& call) {
  switch (call.call_case()) {
    case v1::PluginCall::kStart: return call.start();
    case v1::PluginCall::kCancel: return call.cancel();
    case v1::PluginCall::kDeliver: return call.deliver().task();
    case v1::PluginCall::kReconcile: return call.reconcile();
    case v1::PluginCall::kCanReattach: return call.can_reattach();
    case v1::PluginCall::kDetach: return call.detach();
    case v1::PluginCall::kRelease: return call.release();
    default: return v1::TaskInfoFrame::default_instance();
  }
}

void serve_call(const Generation& generation, const v1::PluginCall& call) {
  v1::ChildFrame frame;
  v1::PluginReply& reply = *frame.mutable_reply();
  reply.set_call_id(call.call_id());
  const v1::TaskInfoFrame& info = task_of(call);
  const KindExecutor* executor = generation.find(info.kind());
  CallResult result;
  if (executor == nullptr) {
    result = {TH_INVALID_ARGUMENT, "the plugin process has no kind '" + info.kind() + "'"};
  } else try {
    const TaskCall task = task_call(info);
    switch (call.call_case()) {
      case v1::PluginCall::kStart: result = executor->start(task); break;
      case v1::PluginCall::kCancel: result = executor->cancel(task); break;
      case v1::PluginCall::kReconcile: result = executor->reconcile(task); break;
      case v1::PluginCall::kDetach: result = executor->detach(task); break;
      case v1::PluginCall::kRelease: executor->release(task); break;
      case v1::PluginCall::kCanReattach: reply.set_flag(executor->can_reattach(task)); break;
      case v1::PluginCall::kDeliver: {
        const v1::DeliverFrame& d = call.deliver();
        result = executor->deliver(task, MessageCall{d.message_id(), d.text(), {reinterpret_cast<const uint8_t*>(d.data().data()), d.data().size()}, d.in_reply_to()});
        break;
      }
      default: result = {TH_UNSUPPORTED, "a call this plugin process does not know"}; break;
    }
  } catch (const std::exception& e) {  // out of the plugin's code, against plugin.h: the task's end, not the process's
    reply.set_threw(true);
    result = {TH_FAILED, e.what()};
  } catch (...) {
    reply.set_threw(true);
    result = {TH_FAILED, "an exception that is not a std::exception"};
  }
  reply.set_status(result.status);
  reply.set_error(result.error);
  (void)g_child->socket.send(frame);
}

v1::ChildFrame hello_of(const LoadResult& loaded) {
  v1::ChildFrame frame;
  v1::ChildHello& hello = *frame.mutable_hello();
  if (!loaded.generation) {
    hello.set_error(loaded.error);
    return frame;
  }
  const Generation& g = *loaded.generation;
  hello.set_name(g.name());
  hello.set_version(g.version());
  hello.set_abi_major(g.manifest().abi_major);  // the descriptor's: the loader checked they agree
  hello.set_abi_minor(g.manifest().abi_minor);
  for (const auto& executor : g.executors()) {
    v1::KindHello& kind = *hello.add_kinds();
    kind.set_kind(executor->kind());
    kind.set_encoding(executor->encoding());
    kind.set_description(executor->description());
    kind.set_input_schema(executor->input_schema());
    kind.set_output_schema(executor->output_schema());
    kind.set_deliver(executor->supports_deliver());
    kind.set_reconcile(executor->supports_reconcile());
    kind.set_release(executor->supports_release());
    kind.set_reattach(executor->supports_reattach());
  }
  return frame;
}

}  // namespace

int run_plugin_process(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr,
                 "usage: %s PLUGIN_FILE HOST_PID\n"
                 "Runs one plugin for a taskhost host (isolation = \"process\"); the host starts it, with the "
                 "socket as fd 3 and the plugin image as fd 4. Not for running by hand.\n",
                 argc > 0 ? argv[0] : "taskhost-plugin-child");
    return 2;
  }
  (void)::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed host takes its plugin processes with it
  if (std::to_string(::getppid()) != argv[2]) return 1;  // the host died before that was in place
  // Nothing this process starts (a plugin's system(), popen(), fork+exec) may inherit the socket: it
  // would keep the host from seeing this process end. Nor anything else inherited by mistake.
  (void)::fcntl(kChildSocketFd, F_SETFD, FD_CLOEXEC);
  (void)::close_range(kChildImageFd + 1, ~0U, CLOSE_RANGE_CLOEXEC);
  const std::filesystem::path source = argv[1];

  Child child;
  g_child = &child;
  const th_host_api api = child_host_api();
  std::string why;
  const std::optional<std::string> image = read_fd_bytes(kChildImageFd, &why);
  ::close(kChildImageFd);
  LoadResult loaded;
  if (!image) {
    loaded.error = source.string() + ": the plugin process could not read the image it was given: " + why;
  } else {
    loaded = load_generation_image(source, *image, 1, api);
  }
  // Sink frames (log lines of a factory) may precede the hello: the host reads them in order.
  if (!child.socket.send(hello_of(loaded)) || !loaded.generation) {
    std::fflush(nullptr);
    std::_Exit(loaded.generation ? 1 : 0);
  }

  const Generation& generation = *loaded.generation;
  CallThreads calls;
  for (;;) {
    v1::ChildFrame frame;
    const FrameSocket::Received got = child.socket.receive(frame, &why);
    if (got == FrameSocket::Received::corrupt) {
      // Not the host's writing (the plugin read from, or wrote to, the socket itself): nothing can be
      // trusted any more, not even that the calls in flight will return. Gone at once; the host sees it.
      std::fprintf(stderr, "taskhost-plugin-child %s: the host's stream broke (%s); exiting\n", argv[1], why.c_str());
      std::fflush(nullptr);
      std::_Exit(70);
    }
    if (got != FrameSocket::Received::frame) break;  // the host closed the socket: stop
    if (frame.has_sink_reply()) {
      child.answered(frame.sink_reply());
    } else if (frame.has_call()) {
      calls.post([&generation, call = std::move(*frame.mutable_call())] { serve_call(generation, call); });
    }
  }
  // Nothing reads the socket any more, so sink calls answer at once from now on (Child::sink) instead of
  // waiting for a reply; then the calls in flight finish (their replies go nowhere).
  child.host_gone();
  calls.join();
  loaded.generation.reset();  // on_destroy_executor joins the plugin's threads
  std::fflush(nullptr);
  std::_Exit(0);  // no static destructors: the plugin's globals may not survive them
}

}  // namespace taskhost::plugin::isolated
