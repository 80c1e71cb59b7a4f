// A plugin image opened from a private in-memory copy: a memfd holding the bytes, dlopen'ed through
// /proc/self/fd/N with Boost.DLL (RTLD_NOW | RTLD_LOCAL).
//
// Why the fd lives as long as the mapping: glibc's dlopen first matches already-loaded objects by the
// NAME they were opened under. If the fd were closed while the library is still mapped, the next memfd
// could get the same number, and dlopen("/proc/self/fd/N") would hand back the OLD library. So the fd is
// closed only after dlclose really unloaded the object (checked with RTLD_NOLOAD); an object that stays
// resident (RTLD_NODELETE, unique symbols, pending TLS destructors) keeps its fd for the process's life.
//
// Its executable segments are registered with the fatal signal handler (crash_report::PluginCode) while it
// is mapped, so that a crash in its code outside any task's call names `file`.
//
// Ownership: owns the fd and the library handle. Not copyable. Thread rule: symbol() is safe from any
// thread; construction and destruction happen on one host thread.
#pragma once

#include "common/crash_report.hpp"
#include "plugin/loaded_code.hpp"

#include <boost/dll/shared_library.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace taskhost::plugin {

class LoadedLibrary final : public LoadedCode {
 public:
  // Copies `image` (the content of plugin file `file`, SHA-256 `content_hash`) into a new memfd called
  // `memfd_name` and opens it. Returns null on failure with `error` set to the real dlerror() text (or the
  // failing system call), without a file prefix.
  static std::unique_ptr<LoadedLibrary> open(std::string_view image, const std::string& memfd_name,
                                             std::string_view file, std::string_view content_hash, std::string* error);
  ~LoadedLibrary() override;

  // The address of exported symbol `name`, or null. Belongs to the library: valid while it is loaded.
  void* symbol(const char* name) const;
  // "/proc/self/fd/N": the name the dynamic loader knows this object by.
  const std::string& path() const { return path_; }

 private:
  LoadedLibrary(int fd, std::string path, boost::dll::shared_library library);

  int fd_;
  std::string path_;
  boost::dll::shared_library library_;
  std::vector<std::unique_ptr<crash_report::PluginCode>> code_;  // its executable segments, while mapped
};

}  // namespace taskhost::plugin
