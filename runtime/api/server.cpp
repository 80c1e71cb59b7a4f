#include "api/server.hpp"

#include "api/json.hpp"
#include "api/request_guard.hpp"
#include "common/log.hpp"
#include "transport/local/local_transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <array>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

namespace taskhost::api {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using net::awaitable;
using tcp = net::ip::tcp;
using unix_socket = net::local::stream_protocol;

namespace {

constexpr auto as_tuple_awaitable = net::as_tuple(net::use_awaitable);
constexpr size_t kMaxBody = 8 * 1024 * 1024;

// Asio opens and accepts sockets without close-on-exec, so a program a plugin starts (exec.run) would
// inherit the listening socket and every client connection: after the host died, its port stayed taken
// and clients hung until that program exited.
void close_on_exec(int fd) { ::fcntl(fd, F_SETFD, FD_CLOEXEC); }

// Wakes watch/wait coroutines from router threads. Once the server stops, wake-ups are dropped instead
// of being posted to an io_context that is going away.
class Waker {
 public:
  explicit Waker(net::any_io_executor ex) : ex_(std::move(ex)) {}
  void wake(const std::shared_ptr<net::steady_timer>& timer) {
    std::lock_guard lock(mu_);
    if (alive_) net::post(ex_, [timer] { timer->cancel(); });
  }
  void shut() {
    std::lock_guard lock(mu_);
    alive_ = false;
  }

 private:
  std::mutex mu_;
  bool alive_ = true;
  net::any_io_executor ex_;
};

std::optional<long> query_ms(const Target& t, const std::string& key, std::string& why) {
  const auto it = t.query.find(key);
  if (it == t.query.end()) return std::nullopt;
  long v = 0;
  const auto& s = it->second;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < 0) {
    why = fmt::format("query parameter '{}' must be a non-negative integer (milliseconds), not '{}'", key, s);
  }
  return v;
}

// Closes a connection that does not deliver a complete request in time: armed around each request read
// only, so a watch or wait that is streaming is never cut. On expiry the socket's pending read is
// cancelled and the session ends. The handler can run after the session's frame is gone (a timer that
// fired just as the read completed), so it reaches the socket only through `armed`, which disarm() and
// the destructor clear on the same (network) thread.
class IdleTimer {
 public:
  template <typename Socket>
  IdleTimer(Socket& socket, std::chrono::milliseconds timeout)
      : timer_(socket.get_executor()), armed_(std::make_shared<bool>(timeout.count() > 0)) {
    if (!*armed_) return;
    timer_.expires_after(timeout);
    timer_.async_wait([&socket, armed = armed_](boost::system::error_code ec) {
      if (ec || !*armed) return;
      boost::system::error_code ignored;
      socket.cancel(ignored);
    });
  }
  ~IdleTimer() { disarm(); }
  IdleTimer(const IdleTimer&) = delete;
  IdleTimer& operator=(const IdleTimer&) = delete;
  void disarm() {
    *armed_ = false;
    timer_.cancel();
  }

 private:
  net::steady_timer timer_;
  std::shared_ptr<bool> armed_;
};

}  // namespace

struct ApiServer::Impl {
  explicit Impl(ServerOptions o)
      : options(std::move(o)), guard(host_names(options)), pool(std::max<size_t>(1, options.worker_threads)),
        waker(std::make_shared<Waker>(ioc.get_executor())) {}

  // The names clients may put in Host: the listen addresses' own, and the configured ones.
  static std::vector<std::string> host_names(const ServerOptions& o) {
    std::vector<std::string> names = o.allowed_hosts;
    for (const auto& e : o.listen) {
      if (!e.is_unix) names.push_back(e.host);
    }
    return names;
  }

  std::optional<ApiContext> context;  // set by start(), before any connection is accepted
  ServerOptions options;
  RequestGuard guard;
  net::io_context ioc{1};
  net::thread_pool pool;  // destroyed (joined) before ioc: its completions post to ioc
  std::shared_ptr<Waker> waker;
  std::vector<std::unique_ptr<tcp::acceptor>> tcp_acceptors;
  std::vector<std::unique_ptr<unix_socket::acceptor>> unix_acceptors;
  std::vector<std::string> bound;
  std::vector<std::filesystem::path> socket_files;
  std::thread thread;
  bool stopped = false;

  // Long-lived requests (wait, watch) in flight, so stop() can end them cleanly: their subscriptions are
  // closed, which makes a watch write its last chunk and a wait answer 503, before the loop stops.
  std::mutex streams_mu;
  std::vector<std::weak_ptr<transport::local::Subscription>> stream_subs;
  std::atomic<int> streams{0};

  struct StreamGuard {
    explicit StreamGuard(std::atomic<int>& n) : count(n) { ++count; }
    ~StreamGuard() { --count; }
    StreamGuard(const StreamGuard&) = delete;
    StreamGuard& operator=(const StreamGuard&) = delete;
    std::atomic<int>& count;
  };

  std::shared_ptr<transport::local::Subscription> subscribe(const std::string& id,
                                                            const std::shared_ptr<net::steady_timer>& timer) {
    auto sub = context->transport.watch(id, [w = waker, timer] { w->wake(timer); });
    std::lock_guard lock(streams_mu);
    std::erase_if(stream_subs, [](const auto& w) { return w.expired(); });
    stream_subs.push_back(sub);
    if (stopped_streams) sub->close();  // raced with stop(): end at once
    return sub;
  }
  bool stopped_streams = false;  // under streams_mu

  void end_streams(std::chrono::milliseconds grace) {
    std::vector<std::shared_ptr<transport::local::Subscription>> open;
    {
      std::lock_guard lock(streams_mu);
      stopped_streams = true;
      for (auto& w : stream_subs) {
        if (auto s = w.lock()) open.push_back(std::move(s));
      }
    }
    log::debug("api: ending {} open stream(s) ({} subscribed)", streams.load(), open.size());
    for (auto& s : open) s->close();
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (streams.load() > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (streams.load() > 0) log::warn("api: {} stream(s) still open after {} ms; closing them", streams.load(), grace.count());
  }

  // Runs `f` on the worker pool and resumes the caller on the network thread with its result (or its
  // exception). Deliberately not a coroutine lambda: GCC 12 destroys by-value captures of coroutine
  // lambdas twice, so the work travels in plain handlers.
  template <typename F>
  auto run_blocking(F f) {
    using R = std::invoke_result_t<F>;
    return net::async_initiate<const net::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        [this](auto handler, F work) {
          net::post(pool, [handler = std::move(handler), work = std::move(work)]() mutable {
            std::exception_ptr error;
            R result{};
            try {
              result = work();
            } catch (...) {
              error = std::current_exception();
            }
            const auto ex = net::get_associated_executor(handler);
            net::dispatch(ex, [handler = std::move(handler), error, result = std::move(result)]() mutable {
              std::move(handler)(error, std::move(result));
            });
          });
        },
        net::use_awaitable, std::move(f));
  }

  template <typename Stream>
  awaitable<bool> write(Stream& stream, unsigned version, bool keep_alive, HttpResponse out) {
    http::response<http::string_body> res{static_cast<http::status>(out.status), version};
    res.set(http::field::server, "taskhost");
    res.set(http::field::content_type, out.content_type);
    res.keep_alive(keep_alive);
    res.body() = out.body;
    res.prepare_payload();
    auto [ec, n] = co_await http::async_write(stream, res, as_tuple_awaitable);
    co_return !ec;
  }

  awaitable<HttpResponse> serve_wait(const Route& route, const Target& target) {
    std::string why;
    auto ms = query_ms(target, "timeout_ms", why);
    if (!why.empty()) co_return error_response(400, why);
    const auto timeout = std::min(ms ? std::chrono::milliseconds(*ms) : options.default_wait, options.max_wait);
    const std::string id = route.task_id;
    auto& transport = context->transport;
    auto lookup = [&transport, id] { return transport.status(id); };
    const auto first = co_await run_blocking(lookup);
    if (!first) co_return error_response(404, "unknown task '" + id + "'", "", id);
    if (first->has_completion()) co_return json_response(200, to_json(first->completion()));

    StreamGuard guard(streams);
    auto timer = std::make_shared<net::steady_timer>(co_await net::this_coro::executor);
    auto sub = subscribe(id, timer);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (const auto& item : sub->take()) {
        if (item.has_completion()) co_return json_response(200, to_json(item.completion()));
      }
      if (sub->closed()) co_return error_response(503, "host is shutting down", "", id);
      if (std::chrono::steady_clock::now() >= deadline) break;
      timer->expires_at(deadline);
      co_await timer->async_wait(as_tuple_awaitable);  // expiry, or a wake-up (cancel)
    }
    const auto latest = co_await run_blocking(lookup);
    co_return json_response(202, latest ? to_json(*latest) : "{}");
  }

  template <typename Stream>
  awaitable<void> serve_watch(Stream& stream, unsigned version, const Target& target) {
    std::string why;
    const auto ms = query_ms(target, "timeout_ms", why);
    if (!why.empty()) {
      HttpResponse bad = error_response(400, why);
      co_await write(stream, version, false, std::move(bad));
      co_return;
    }
    const auto task_it = target.query.find("task");
    const std::string id = task_it == target.query.end() ? std::string() : task_it->second;
    auto& transport = context->transport;
    if (!id.empty()) {
      auto lookup = [&transport, id] { return transport.status(id).has_value(); };
      const bool known = co_await run_blocking(lookup);
      if (!known) {
        HttpResponse missing = error_response(404, "unknown task '" + id + "'", "", id);
        co_await write(stream, version, false, std::move(missing));
        co_return;
      }
    }
    StreamGuard guard(streams);
    auto timer = std::make_shared<net::steady_timer>(co_await net::this_coro::executor);
    auto sub = subscribe(id, timer);

    http::response<http::empty_body> res{http::status::ok, version};
    res.set(http::field::server, "taskhost");
    res.set(http::field::content_type, "application/x-ndjson");
    res.set(http::field::cache_control, "no-cache");
    res.keep_alive(false);
    res.chunked(true);
    http::response_serializer<http::empty_body> sr{res};
    if (auto [ec, n] = co_await http::async_write_header(stream, sr, as_tuple_awaitable); ec) co_return;

    using clock = std::chrono::steady_clock;
    // A timeout past the clock's range is none (now + it would overflow, and end the watch at once).
    const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(clock::time_point::max() - clock::now());
    const auto deadline = ms && *ms < room.count() ? clock::now() + std::chrono::milliseconds(*ms) : clock::time_point::max();
    auto next_keepalive = clock::now() + options.keepalive;
    for (;;) {
      const auto items = sub->take();
      if (!items.empty()) {
        std::string text;
        bool done = false;
        for (const auto& item : items) {
          text += to_json(item);
          text += '\n';
          if (!id.empty() && item.has_completion()) done = true;
        }
        const auto chunk = http::make_chunk(net::buffer(text));
        if (auto [ec, n] = co_await net::async_write(stream, chunk, as_tuple_awaitable); ec) co_return;  // client gone
        next_keepalive = clock::now() + options.keepalive;
        if (done) break;
        continue;
      }
      if (sub->closed()) {
        if (sub->overflowed()) {
          // Said, not just ended: the reader must not take a cut stream for the task's whole story.
          v1::WatchItem lost;
          lost.set_overflow("watch stream ended by the host: " + sub->overflow_reason());
          const std::string text = to_json(lost) + "\n";
          const auto chunk = http::make_chunk(net::buffer(text));
          if (auto [ec, n] = co_await net::async_write(stream, chunk, as_tuple_awaitable); ec) co_return;
        }
        break;
      }
      const auto now = clock::now();
      if (now >= deadline) break;
      if (now >= next_keepalive) {
        // A blank line: ndjson readers skip it, and a write is how a vanished client is noticed.
        static const std::string blank = "\n";
        const auto chunk = http::make_chunk(net::buffer(blank));
        if (auto [ec, n] = co_await net::async_write(stream, chunk, as_tuple_awaitable); ec) co_return;
        next_keepalive = now + options.keepalive;
        continue;
      }
      timer->expires_at(std::min(deadline, next_keepalive));
      co_await timer->async_wait(as_tuple_awaitable);
    }
    const auto last = http::make_chunk_last();
    co_await net::async_write(stream, last, as_tuple_awaitable);
  }

  // The request could not be read as HTTP (as opposed to a client that went away or went idle): it gets
  // a 400 saying why, instead of a connection closed without a word.
  static bool malformed(const boost::system::error_code& ec) {
    return ec.category() == http::make_error_code(http::error::bad_method).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message;
  }

  // Closes after an answer sent before the request was read whole (413, 400). Closing at once with the
  // rest of the request unread makes the kernel reset the connection, and a reset can destroy the
  // answer before the client reads it (the CLI saw "broken pipe" instead of the 413). So: stop
  // sending, then read and drop what the client still sends, for at most kLingerFor, before closing.
  template <typename Socket>
  awaitable<void> linger_close(Socket& socket) {
    static constexpr std::chrono::seconds kLingerFor{2};
    boost::system::error_code ignored;
    socket.shutdown(Socket::shutdown_send, ignored);
    IdleTimer limit(socket, kLingerFor);
    std::array<char, 64 * 1024> sink;
    for (;;) {
      auto [ec, n] = co_await socket.async_read_some(net::buffer(sink), as_tuple_awaitable);
      if (ec) break;  // EOF: the client read the answer and closed; or the time is up
    }
    socket.close(ignored);
  }

  template <typename Socket>
  awaitable<void> session(Socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxBody);
      IdleTimer idle(socket, options.idle_timeout);
      auto [ec, n] = co_await http::async_read(socket, buffer, parser, as_tuple_awaitable);
      idle.disarm();
      if (ec == http::error::body_limit) {
        HttpResponse too_big = error_response(413, fmt::format("request body over {} bytes", kMaxBody));
        co_await write(socket, 11, false, std::move(too_big));
        co_await linger_close(socket);
        co_return;
      }
      if (malformed(ec)) {
        HttpResponse bad = error_response(400, fmt::format("malformed HTTP request: {}", ec.message()));
        co_await write(socket, 11, false, std::move(bad));
        co_await linger_close(socket);
        co_return;
      }
      if (ec) break;
      const auto& req = parser.get();
      if constexpr (std::is_same_v<Socket, tcp::socket>) {
        const auto header = [&](http::field f) -> std::optional<std::string_view> {
          const auto it = req.find(f);
          if (it == req.end()) return std::nullopt;
          return std::string_view(it->value().data(), it->value().size());
        };
        if (auto refused = guard.check(header(http::field::origin), header(http::field::host))) {
          log::warn("api: {}", refused->message);
          co_await write(socket, req.version(), false, error_response(refused->status, refused->message));
          break;
        }
      }
      const Target target = parse_target(req.target());
      const Route r = route(req.method_string(), target);
      if (r.endpoint == Endpoint::watch && target.ok) {  // else a 400 from handle(), as for every endpoint
        co_await serve_watch(socket, req.version(), target);
        break;
      }
      HttpResponse out;
      if (r.endpoint == Endpoint::wait && target.ok) {
        out = co_await serve_wait(r, target);
      } else if (r.endpoint == Endpoint::health) {
        // Answered here, not on the worker pool: it reads counters under short locks and never waits on
        // the store or a plugin, and a liveness probe must not queue behind blocking requests (a reload
        // waiting on a slow plugin factory, submits waiting on a slow disk) and then kill a busy host.
        out = handle(*context, r, target, req.body());
      } else {
        auto work = [this, r, target, body = req.body()] { return handle(*context, r, target, body); };
        out = co_await run_blocking(std::move(work));
      }
      const bool keep_alive = req.keep_alive();
      const bool written = co_await write(socket, req.version(), keep_alive, std::move(out));
      if (!written || !keep_alive) break;
    }
    boost::system::error_code ignored;
    socket.shutdown(Socket::shutdown_send, ignored);
  }

  template <typename Acceptor>
  awaitable<void> accept_loop(Acceptor& acceptor) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(as_tuple_awaitable);
      if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        // Out of descriptors and the like: say so, back off briefly, keep serving.
        log::warn("api: accept failed: {}", ec.message());
        net::steady_timer pause(co_await net::this_coro::executor, std::chrono::milliseconds(100));
        co_await pause.async_wait(as_tuple_awaitable);
        continue;
      }
      close_on_exec(socket.native_handle());
      net::co_spawn(ioc, session(std::move(socket)), net::detached);
    }
  }

  void listen_tcp(const config::Endpoint& e) {
    boost::system::error_code ec;
    tcp::resolver resolver(ioc);
    const auto results = resolver.resolve(e.host, std::to_string(e.port), tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      throw ApiError(fmt::format("cannot listen on {}: {}", e.to_string(), ec ? ec.message() : "no address"));
    }
    auto acceptor = std::make_unique<tcp::acceptor>(ioc);
    const tcp::endpoint ep = results.begin()->endpoint();
    acceptor->open(ep.protocol(), ec);
    if (!ec) close_on_exec(acceptor->native_handle());
    if (!ec) acceptor->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw ApiError(fmt::format("cannot listen on {}: {}", e.to_string(), ec.message()));
    const auto local = acceptor->local_endpoint();
    config::Endpoint real = e;
    real.host = local.address().to_string();
    real.port = local.port();
    bound.push_back(real.to_string());
    tcp_acceptors.push_back(std::move(acceptor));
    if (!local.address().is_loopback()) {
      log::warn("api: {} is reachable from other machines, and the API has no authentication: whoever reaches "
                "it can run tasks (with exec.run, programs). Prefer a loopback address or [api] unix_socket.",
                real.to_string());
    }
  }

  void listen_unix(const config::Endpoint& e) {
    // A socket file left by a host that died is in the way; anything else at that path is not ours,
    // and neither is a socket something still accepts on (another host: unlinking its file would take
    // its address, and leave it unreachable once this one exits).
    struct stat st {};
    if (::lstat(e.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) throw ApiError(fmt::format("cannot listen on {}: the path exists and is not a socket", e.to_string()));
      unix_socket::socket probe(ioc);
      boost::system::error_code probe_ec;
      probe.connect(unix_socket::endpoint(e.path), probe_ec);
      if (!probe_ec) {
        throw ApiError(fmt::format("cannot listen on {}: Address already in use (another process accepts on it)", e.to_string()));
      }
      ::unlink(e.path.c_str());  // nobody listens: left by a host that died
    }
    boost::system::error_code ec;
    auto acceptor = std::make_unique<unix_socket::acceptor>(ioc);
    const unix_socket::endpoint ep(e.path);
    acceptor->open(ep.protocol(), ec);
    if (!ec) close_on_exec(acceptor->native_handle());
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw ApiError(fmt::format("cannot listen on {}: {}", e.to_string(), ec.message()));
    bound.push_back(e.to_string());
    socket_files.emplace_back(e.path);
    unix_acceptors.push_back(std::move(acceptor));
  }

  void close_all() {
    boost::system::error_code ignored;
    for (auto& a : tcp_acceptors) a->close(ignored);
    for (auto& a : unix_acceptors) a->close(ignored);
    for (const auto& f : socket_files) {
      std::error_code fec;
      std::filesystem::remove(f, fec);
    }
    socket_files.clear();
  }
};

ApiServer::ApiServer(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

ApiServer::~ApiServer() { stop(); }

void ApiServer::bind() {
  if (!impl_->bound.empty()) return;
  try {
    if (impl_->options.listen.empty()) throw ApiError("no address to listen on");
    for (const auto& e : impl_->options.listen) {
      if (e.is_unix) impl_->listen_unix(e);
      else impl_->listen_tcp(e);
    }
  } catch (...) {
    impl_->close_all();
    impl_->bound.clear();
    throw;
  }
}

void ApiServer::start(ApiContext context) {
  impl_->context.emplace(context);
  bind();
  for (auto& a : impl_->tcp_acceptors) net::co_spawn(impl_->ioc, impl_->accept_loop(*a), net::detached);
  for (auto& a : impl_->unix_acceptors) net::co_spawn(impl_->ioc, impl_->accept_loop(*a), net::detached);
  impl_->thread = std::thread([impl = impl_.get()] {
    auto guard = net::make_work_guard(impl->ioc);
    impl->ioc.run();
  });
}

std::vector<std::string> ApiServer::addresses() const { return impl_->bound; }

void ApiServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  net::post(impl_->ioc, [impl = impl_.get()] { impl->close_all(); });  // no new connections
  impl_->end_streams(std::chrono::milliseconds(1'000));
  impl_->waker->shut();
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->close_all();
  impl_->pool.join();  // handlers in flight finish; their completions land in the stopped ioc
}

}  // namespace taskhost::api
