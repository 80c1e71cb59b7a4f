#include "registry/directory_watcher.hpp"

#include "common/log.hpp"
#include "plugin/manifest.hpp"
#include "registry/file_identity.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace taskhost::registry {
namespace {

using Clock = std::chrono::steady_clock;

// IN_MODIFY is not a reason to load anything: it only tells that a writer is at work, so the file is
// kept out of scans until it is complete.
constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ATTRIB |
                                IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;

bool is_link(const std::filesystem::path& file) {
  struct stat st {};
  return ::lstat(file.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

void log_scan(const ScanReport& report, const KindRegistry& registry) {
  for (const auto& file : report.loaded) {
    if (const GenerationPtr now = registry.current(file)) {
      log::info("reload: {} serves {} {} as generation {}", file.string(), now->name(), now->version(), now->id());
    }
  }
  for (const auto& retired : report.retired) {
    log::info("reload: {} generation {} (version {}) takes no new tasks; its running tasks drain", retired.file.string(),
              retired.id, retired.version);
  }
  for (const auto& file : report.removed) log::info("reload: {} removed; its kinds take no new tasks", file.string());
  for (const auto& error : report.errors) log::error("reload: {}; the previous generation, if any, keeps serving", error);
}

}  // namespace

class DirectoryWatcher::Impl {
 public:
  Impl(PluginDirectory& directory, WatcherOptions options);
  ~Impl() { stop(); }
  void stop();
  Stats stats() const;

 private:
  enum class Hint {
    written,  // a writer finished: closed after writing, renamed in, a symlink created
    writing,  // a writer is at work: modified, created as a regular file
    touched,  // something changed (attributes, or seen by the periodic comparison)
    gone,     // deleted or renamed away
    renamed,  // renamed to another plugin file name in this directory: gone for good, at once
  };
  struct Pending {
    Clock::time_point since;              // the last change seen (an event, or a new identity)
    std::optional<FileIdentity> seen;     // identity at the last look; nullopt = absent
    bool looked = false;
    bool written = false;                 // complete as far as events tell: ready as soon as it is valid
    bool renamed = false;                 // moved to another name here: removed without waiting
  };

  void add_watch();
  void read_events();
  void handle_events(const char* data, size_t size);
  void note(const std::string& name, Hint hint);
  std::map<std::string, FileIdentity> list_files() const;
  void compare_all();
  void evaluate();
  void arm_rescan();

  PluginDirectory& directory_;
  const WatcherOptions options_;
  boost::asio::io_context io_;  // declared before every I/O object bound to it
  boost::asio::posix::stream_descriptor inotify_;
  boost::asio::steady_timer settle_timer_;
  boost::asio::steady_timer rescan_timer_;
  // --- watcher thread only ---
  int wd_ = -1;
  bool watch_error_logged_ = false;
  std::map<std::string, Pending> pending_;
  std::map<std::string, FileIdentity> known_;  // identity of each file when last handed to a scan
  // The last plugin file renamed away (inotify cookie, name): its IN_MOVED_TO follows right after it.
  std::pair<uint32_t, std::string> moved_from_;
  alignas(inotify_event) std::array<char, 64 * 1024> buffer_{};
  // --- any thread ---
  std::atomic<uint64_t> events_{0}, scans_{0}, overflows_{0};
  std::atomic<bool> watching_{false};
  std::mutex stop_mutex_;
  std::thread thread_;
};

DirectoryWatcher::Impl::Impl(PluginDirectory& directory, WatcherOptions options)
    : directory_(directory), options_(options), inotify_(io_), settle_timer_(io_), rescan_timer_(io_) {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    log::error("reload: cannot watch {}: inotify_init1: {}; falling back to a rescan every {} ms",
               directory_.path().string(), std::strerror(errno), options_.rescan_interval.count());
  } else {
    inotify_.assign(fd);
    add_watch();
    read_events();
  }
  // Taken after the watch is in place: a change from here on is either in this listing or an event.
  known_ = list_files();
  arm_rescan();
  thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        log::error("reload: watcher of {}: {}", directory_.path().string(), e.what());
      }
    }
  });
}

void DirectoryWatcher::Impl::stop() {
  std::lock_guard lock(stop_mutex_);
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

DirectoryWatcher::Stats DirectoryWatcher::Impl::stats() const {
  return Stats{events_.load(), scans_.load(), overflows_.load(), watching_.load()};
}

void DirectoryWatcher::Impl::add_watch() {
  if (!inotify_.is_open()) return;
  wd_ = ::inotify_add_watch(inotify_.native_handle(), directory_.path().c_str(), kWatchMask);
  watching_ = wd_ >= 0;
  if (wd_ >= 0) {
    if (watch_error_logged_) log::info("reload: watching {} again", directory_.path().string());
    watch_error_logged_ = false;
  } else if (!watch_error_logged_) {
    watch_error_logged_ = true;
    log::warn("reload: cannot watch {}: {}; retrying every {} ms", directory_.path().string(), std::strerror(errno),
              options_.rescan_interval.count());
  }
}

void DirectoryWatcher::Impl::read_events() {
  inotify_.async_read_some(boost::asio::buffer(buffer_), [this](const boost::system::error_code& ec, size_t n) {
    if (ec == boost::asio::error::operation_aborted) return;
    if (ec) {
      log::error("reload: reading inotify events for {}: {}; only the periodic rescan remains",
                 directory_.path().string(), ec.message());
      watching_ = false;
      return;
    }
    handle_events(buffer_.data(), n);
    evaluate();
    read_events();
  });
}

void DirectoryWatcher::Impl::handle_events(const char* data, size_t size) {
  for (size_t offset = 0; offset + sizeof(inotify_event) <= size;) {
    inotify_event event;
    std::memcpy(&event, data + offset, sizeof(event));
    const char* name_ptr = data + offset + sizeof(inotify_event);
    offset += sizeof(inotify_event) + event.len;
    if (event.mask & IN_Q_OVERFLOW) {
      // Events were lost: compare every file instead.
      ++overflows_;
      compare_all();
      continue;
    }
    if (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
      if (event.wd == wd_) {
        // The directory went away or moved: the watch no longer follows the configured path. It is
        // re-added (and every file compared) at the next periodic rescan.
        ::inotify_rm_watch(inotify_.native_handle(), wd_);
        wd_ = -1;
        watching_ = false;
        log::warn("reload: {} was moved or deleted; watching it again when it is back", directory_.path().string());
      }
      continue;
    }
    if (event.len == 0 || (event.mask & IN_ISDIR)) continue;
    const std::string name(name_ptr, ::strnlen(name_ptr, event.len));
    if (!is_plugin_file_name(name)) continue;
    ++events_;
    if (event.mask & (IN_DELETE | IN_MOVED_FROM)) {
      note(name, Hint::gone);
      if (event.mask & IN_MOVED_FROM) moved_from_ = {event.cookie, name};
    } else if (event.mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
      note(name, Hint::written);
      // A rename within the directory: the old name leaves in the scan the new one arrives in. Left to
      // settle, it would still hold its kinds when the new name loads, which is refused as a conflict.
      if ((event.mask & IN_MOVED_TO) && event.cookie != 0 && event.cookie == moved_from_.first &&
          moved_from_.second != name) {
        note(moved_from_.second, Hint::renamed);
      }
    } else if (event.mask & IN_CREATE) {
      note(name, is_link(directory_.path() / name) ? Hint::written : Hint::writing);
    } else if (event.mask & IN_MODIFY) {
      note(name, Hint::writing);
    } else if (event.mask & IN_ATTRIB) {
      note(name, Hint::touched);
    }
  }
}

void DirectoryWatcher::Impl::note(const std::string& name, Hint hint) {
  Pending& p = pending_[name];
  p.since = Clock::now();
  switch (hint) {
    case Hint::written:
      p.written = true;
      p.renamed = false;
      break;
    case Hint::writing:
    case Hint::gone:
      p.written = false;
      p.renamed = false;
      break;
    case Hint::renamed:
      p.written = false;
      p.renamed = true;
      break;
    case Hint::touched: break;
  }
}

std::map<std::string, FileIdentity> DirectoryWatcher::Impl::list_files() const {
  std::map<std::string, FileIdentity> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(directory_.path(), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!is_plugin_file_name(name)) continue;
    if (const auto identity = identify(it->path())) files.emplace(name, *identity);
  }
  return files;
}

void DirectoryWatcher::Impl::compare_all() {
  const std::map<std::string, FileIdentity> present = list_files();
  for (const auto& [name, identity] : present) {
    const auto known = known_.find(name);
    if ((known == known_.end() || known->second != identity) && !pending_.contains(name)) note(name, Hint::touched);
  }
  for (const auto& [name, identity] : known_) {
    if (!present.contains(name) && !pending_.contains(name)) note(name, Hint::gone);
  }
}

void DirectoryWatcher::Impl::evaluate() {
  const Clock::time_point now = Clock::now();
  std::vector<std::string> ready;
  ScanOptions scan_options;
  scan_options.retry_failed = false;
  Clock::time_point next = Clock::time_point::max();
  for (auto& [name, p] : pending_) {
    const std::filesystem::path file = directory_.path() / name;
    const std::optional<FileIdentity> identity = identify(file);
    if (p.looked && identity != p.seen) p.since = now;  // still changing
    p.seen = identity;
    p.looked = true;
    const bool held_still = now - p.since >= options_.settle;
    bool is_ready = false;
    if (!identity) {
      is_ready = held_still || p.renamed;  // stayed gone (or renamed within the directory): removed
    } else if (p.written || held_still) {
      // Ready when it inspects valid; an image that is still invalid after holding still is handed to the
      // scan anyway, which records why it cannot load while the previous generation keeps serving.
      is_ready = plugin::inspect_file(file).ok() || held_still;
    }
    if (is_ready) {
      ready.push_back(name);
    } else {
      scan_options.settling.insert(file);
      next = std::min(next, p.since + options_.settle);
    }
  }
  if (!ready.empty()) {
    for (const auto& name : ready) {
      const auto p = pending_.find(name);
      if (p->second.seen) {
        known_[name] = *p->second.seen;
      } else {
        known_.erase(name);
      }
      pending_.erase(p);
    }
    try {
      const ScanReport report = directory_.scan(scan_options);
      ++scans_;
      log_scan(report, directory_.registry());
    } catch (const std::exception& e) {
      log::error("reload: scanning {}: {}", directory_.path().string(), e.what());
    }
  }
  if (next == Clock::time_point::max()) {
    settle_timer_.cancel();
    return;
  }
  settle_timer_.expires_at(next);
  settle_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) evaluate();
  });
}

void DirectoryWatcher::Impl::arm_rescan() {
  rescan_timer_.expires_after(options_.rescan_interval);
  rescan_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (wd_ < 0) add_watch();
    compare_all();
    evaluate();
    arm_rescan();
  });
}

DirectoryWatcher::DirectoryWatcher(PluginDirectory& directory, WatcherOptions options)
    : impl_(std::make_unique<Impl>(directory, options)) {}

DirectoryWatcher::~DirectoryWatcher() { impl_->stop(); }

void DirectoryWatcher::stop() { impl_->stop(); }

DirectoryWatcher::Stats DirectoryWatcher::stats() const { return impl_->stats(); }

}  // namespace taskhost::registry
