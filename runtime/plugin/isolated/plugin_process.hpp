// Starting, watching and ending one plugin process: the program `taskhost-plugin-child`, which loads a
// plugin image and speaks frames with the host over a socket (child_side.hpp is its half).
//
// It starts in a process group of its own, with no signal blocked and default signal dispositions, so a
// Ctrl-C at the host's terminal is the host's to handle (it drains), and what the plugin starts behaves as
// it would under an in-process plugin.
//
// The child gets exactly two descriptors beyond stdin/stdout/stderr: the socket as fd 3 and the plugin
// image (a sealed in-memory copy, the bytes the host inspected and hashed) as fd 4. Its arguments are the
// plugin file's name and the host's pid. It dies with the host (PR_SET_PDEATHSIG), so no plugin process
// outlives a killed host.
//
// Thread rule: one PluginProcess is driven by one thread at a time (its supervisor). Ownership: owns the
// child until it was reaped; the destructor kills and reaps one still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace taskhost::plugin::isolated {

inline constexpr int kChildSocketFd = 3;
inline constexpr int kChildImageFd = 4;

class PluginProcess {
 public:
  // Starts `program` for the image in `image_fd` (the plugin file `source`, named in the child's log
  // lines and errors). Returns null with `error` set when it cannot. `socket_fd` is the child's end of
  // the pair; the caller closes its own copy afterwards.
  static std::unique_ptr<PluginProcess> spawn(const std::filesystem::path& program, int socket_fd, int image_fd,
                                              const std::filesystem::path& source, std::string* error);
  ~PluginProcess();
  PluginProcess(const PluginProcess&) = delete;
  PluginProcess& operator=(const PluginProcess&) = delete;

  pid_t pid() const { return pid_; }
  // A pidfd of the child (readable once it exited), or -1 where the kernel has none. Owned.
  int pidfd() const { return pidfd_; }
  // SIGKILLs what is left of the child's process group (what the plugin started), the child included.
  // Only before reap(): until then the child's pid cannot name another process group.
  void kill_group();
  // Waits up to `grace` for the child to exit by itself, then kills it (SIGKILL) and reaps it. Returns
  // how it ended, in words ("exited with status 3", "killed by signal 11 (Segmentation fault)").
  std::string reap(std::chrono::milliseconds grace);

 private:
  explicit PluginProcess(pid_t pid);
  pid_t pid_;
  int pidfd_ = -1;
  bool reaped_ = false;
};

// A sealed memfd holding `image`, or -1 with `error` set. Close-on-exec: only spawn() hands it on.
int image_memfd(const std::string& image, const std::string& name, std::string* error);

// The program that runs plugin processes when none is configured: taskhost-plugin-child next to the
// running executable.
std::filesystem::path default_plugin_process_program();

}  // namespace taskhost::plugin::isolated
