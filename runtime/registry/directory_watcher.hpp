// The directory watcher: reloads the plugins directory when its files change, without an operator.
//
// inotify on the directory, read through Boost.Asio on the watcher's own io_context thread. Every event
// on a plugin file name marks that file "pending"; a pending file is handed to PluginDirectory::scan once
// it is complete, and the scan installs everything that is ready as one switch:
//   - renamed in (IN_MOVED_TO), closed after writing (IN_CLOSE_WRITE) or a new symlink (IN_CREATE): ready
//     at once if the image already inspects valid — the rename-to-first-task path pays no debounce;
//   - written in place (IN_MODIFY, IN_CREATE of a regular file, IN_ATTRIB): ready once its size, mtime
//     and inode held still for `settle` and it inspects valid; if it still does not inspect valid after
//     holding still for `settle`, the scan records why and the previous generation keeps serving;
//   - deleted or renamed away (IN_DELETE, IN_MOVED_FROM): removed once it stayed gone for `settle`, so a
//     delete-then-copy deploy is one replacement, not an outage.
// Files still settling are passed to the scan as `settling`: they are neither loaded nor removed by a
// scan that another file triggered. A periodic rescan (every `rescan_interval`) compares every file's
// identity (inode, size, mtime, ctime) with what the watcher last saw, which catches what inotify cannot
// report: lost events (IN_Q_OVERFLOW), a symlink whose target changed outside the directory, a watch
// lost with the directory (it is re-added).
//
// Thread rule: construct and destroy on a host thread; stop() is safe from any thread except the
// watcher's own (a scan listener must not call it). Scans run on the watcher thread and may run plugin
// code (factories, destructors of replaced generations): never on a plugin thread.
#pragma once

#include "registry/plugin_directory.hpp"

#include <chrono>
#include <cstdint>
#include <memory>

namespace taskhost::registry {

struct WatcherOptions {
  std::chrono::milliseconds settle{150};           // how long a file must hold still (or stay gone)
  std::chrono::milliseconds rescan_interval{2000};  // periodic comparison of the whole directory
};

class DirectoryWatcher {
 public:
  // Starts watching `directory.path()` before returning, so a change made after construction is never
  // missed; the first scan is the caller's (the watcher reacts to changes only). `directory` must outlive
  // the watcher. A directory that cannot be watched (missing, inotify limits) is logged and retried at
  // every periodic rescan.
  DirectoryWatcher(PluginDirectory& directory, WatcherOptions options);
  ~DirectoryWatcher();  // stop()
  DirectoryWatcher(const DirectoryWatcher&) = delete;
  DirectoryWatcher& operator=(const DirectoryWatcher&) = delete;

  // Stops the watcher thread; a scan in progress finishes first. Idempotent.
  void stop();

  struct Stats {
    uint64_t events = 0;     // inotify events on plugin file names
    uint64_t scans = 0;      // scans the watcher ran
    uint64_t overflows = 0;  // IN_Q_OVERFLOW seen (each followed by a full comparison)
    bool watching = false;   // an inotify watch is in place right now
  };
  Stats stats() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskhost::registry
