// taskhost watch [ID] [--timeout SECS]
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "cli/format.hpp"
#include "common/unix_time.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <unistd.h>

#include <chrono>
#include <iostream>

namespace taskhost::cli {
namespace {

std::string clock_text(int64_t unix_ms) {
  const auto t = static_cast<std::time_t>(unix_ms / 1000);
  return fmt::format("{:%H:%M:%S}.{:03d}", fmt::localtime(t), static_cast<int>(unix_ms % 1000));
}

// Plain lines when piped; in a terminal, a task's progress redraws one line as a bar until something
// else is printed.
class Printer {
 public:
  explicit Printer(bool tty) : tty_(tty) {}

  void item(const v1::WatchItem& item) {
    if (item.has_completion()) {
      const auto& c = item.completion();
      // Stamped when it ended (a replay of an ended task is not "now"); older hosts did not say.
      line(c.unix_ms() != 0 ? c.unix_ms() : unix_ms_now(), c.task_id(), c.kind(), completion_text(c));
      return;
    }
    const auto& e = item.event();
    if (tty_ && e.has_progress()) {
      const std::string text = fmt::format("{}  {}  {}  {} {}", clock_text(e.unix_ms()), e.task_id(), e.kind(),
                                           progress_bar(e.progress(), 24), progress_text(e.progress()));
      if (open_bar_ && bar_task_ != e.task_id()) std::cout << "\n";
      std::cout << "\r\x1b[2K" << text << std::flush;
      open_bar_ = true;
      bar_task_ = e.task_id();
      return;
    }
    line(e.unix_ms(), e.task_id(), e.kind(), event_text(e));
  }

  void finish() {
    if (open_bar_) std::cout << "\n" << std::flush;
    open_bar_ = false;
  }

 private:
  void line(int64_t unix_ms, const std::string& task, const std::string& kind, const std::string& text) {
    finish();
    std::cout << clock_text(unix_ms) << "  " << task << "  " << kind << "  " << text << "\n" << std::flush;
  }

  bool tty_;
  bool open_bar_ = false;
  std::string bar_task_;
};

}  // namespace

int watch_command(const Args& args) {
  CommandLine cl("watch", "watch [ID] [--timeout SECS]",
                 "Follows task ID (its events so far, then live, until it ends) or every task (live, until\n"
                 "interrupted or --timeout). In a terminal, progress shows as a bar; piped, as plain lines.");
  cl.options().add_options()
      ("id", po::value<std::string>(), "the task id (positional, optional)")
      ("timeout", po::value<long long>()->value_name("SECS"), "stop after SECS seconds (0, the default: no limit)");
  cl.client_options(true);
  cl.positional("id", 1);
  if (!cl.parse(args)) return kExitOk;
  const std::chrono::seconds timeout = timeout_flag(cl);
  const std::string id = cl.has("id") ? cl.get<std::string>("id") : std::string();
  Printer printer(!cl.json() && ::isatty(STDOUT_FILENO) == 1);
  bool ended = false;  // the watched task's completion came
  const auto started = std::chrono::steady_clock::now();
  make_client(cl)->watch(
      id,
      [&](const v1::WatchItem& item) {
        ended = ended || item.has_completion();
        if (cl.json()) {
          print_json(item);
          std::cout.flush();
        } else {
          printer.item(item);
        }
        return true;
      },
      timeout);
  printer.finish();
  // A stream of one task that ends before the task did, and not at --timeout, was ended by the host (it
  // is stopping): a script must not take that for the task's end.
  const bool before_timeout = timeout.count() == 0 || std::chrono::steady_clock::now() - started < timeout;
  if (!id.empty() && !ended && before_timeout) {
    throw transport::ClientError("the watch of task '" + id + "' ended before the task did (the host stopped?); `taskhost status " +
                      id + "` says where it is");
  }
  // The stream of every task ends only at --timeout, or when the host ends it: a monitoring script must
  // tell that from its own timeout.
  if (id.empty() && before_timeout) {
    throw transport::ClientError("the watch ended before its --timeout: the host ended it (it stopped?)");
  }
  return kExitOk;
}

}  // namespace taskhost::cli
