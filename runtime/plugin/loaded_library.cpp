#include "plugin/loaded_library.hpp"

#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace taskhost::plugin {
namespace {

std::string errno_text(const char* call) { return std::string(call) + ": " + std::strerror(errno); }

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// The executable segments of `image` as the loader mapped it at `base` (its link map's l_addr), from the
// image's own program headers: no walk of the loader's object list, which a concurrent dlclose changes.
std::vector<std::pair<uintptr_t, uintptr_t>> executable_ranges(std::string_view image, uintptr_t base) {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  ElfW(Ehdr) header;
  if (image.size() < sizeof header) return ranges;
  std::memcpy(&header, image.data(), sizeof header);
  if (header.e_phentsize != sizeof(ElfW(Phdr))) return ranges;
  for (size_t i = 0; i < header.e_phnum; ++i) {
    const size_t at = header.e_phoff + i * sizeof(ElfW(Phdr));
    if (at > image.size() || image.size() - at < sizeof(ElfW(Phdr))) break;
    ElfW(Phdr) ph;
    std::memcpy(&ph, image.data() + at, sizeof ph);
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    ranges.emplace_back(base + ph.p_vaddr, base + ph.p_vaddr + ph.p_memsz);
  }
  return ranges;
}

}  // namespace

std::unique_ptr<LoadedLibrary> LoadedLibrary::open(std::string_view image, const std::string& memfd_name,
                                                   std::string_view file, std::string_view content_hash,
                                                   std::string* error) {
  const int fd = ::memfd_create(memfd_name.c_str(), MFD_CLOEXEC);
  if (fd < 0) {
    *error = errno_text("memfd_create");
    return nullptr;
  }
  if (!write_all(fd, image)) {
    *error = errno_text("write to memfd");
    ::close(fd);
    return nullptr;
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);

  boost::dll::shared_library library;
  std::error_code ec;
  ::dlerror();  // start from a clean per-thread error so the text below is this dlopen's
  library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec || !library.is_loaded()) {
    // Boost.DLL only reports a generic error_code; dlerror() still holds the loader's own words
    // ("undefined symbol: ...", "cannot allocate memory in static TLS block").
    const char* text = ::dlerror();
    *error = text ? std::string(text) : "dlopen failed: " + ec.message();
    ::close(fd);  // a failed dlopen leaves nothing mapped under this name
    return nullptr;
  }
  auto loaded = std::unique_ptr<LoadedLibrary>(new LoadedLibrary(fd, std::move(path), std::move(library)));
  // Where the loader mapped it (l_addr): its code's addresses are the image's own plus that.
  link_map* map = nullptr;
  if (::dlinfo(loaded->library_.native(), RTLD_DI_LINKMAP, &map) == 0 && map != nullptr) {
    for (const auto& [begin, end] : executable_ranges(image, map->l_addr)) {
      loaded->code_.push_back(std::make_unique<crash_report::PluginCode>(begin, end, file, content_hash));
    }
  }
  return loaded;
}

LoadedLibrary::LoadedLibrary(int fd, std::string path, boost::dll::shared_library library)
    : fd_(fd), path_(std::move(path)), library_(std::move(library)) {}

LoadedLibrary::~LoadedLibrary() {
  // Its code stays registered through the unload (a crash in its destructors is named) and after it, if it
  // stays resident: its threads may run on. A library mapped at its addresses later takes them over.
  library_.unload();
  // RTLD_NOLOAD finds the object only if it is still resident, and then takes a reference we give back.
  if (void* still_mapped = ::dlopen(path_.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {
    ::dlclose(still_mapped);
    // Deliberate leak: the loader still knows an object by the name /proc/self/fd/N, so N must never be
    // reused for another plugin copy (see the header). One fd per pinned library is the price, and its
    // code's registration.
    for (auto& code : code_) code->keep();
    return;
  }
  code_.clear();
  ::dlerror();  // RTLD_NOLOAD's "not found" is the expected answer; do not leave it for the next caller
  ::close(fd_);
}

void* LoadedLibrary::symbol(const char* name) const {
  // dlsym directly: Boost.DLL's get() throws on a missing symbol and its has() costs a second lookup.
  return ::dlsym(library_.native(), name);
}

}  // namespace taskhost::plugin
