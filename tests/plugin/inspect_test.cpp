// Dry inspection of real fixture files: what a plugin declares, read without dlopen. The marker fixture's
// static constructor leaves a trace when the library is really loaded, which is how these tests see that
// inspection (and a refused load) never ran plugin code.
#include "loader_test_support.hpp"
#include "plugin/loader.hpp"
#include "plugin/manifest.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>

using namespace taskhost::plugin;
using namespace taskhost::plugin_test;

namespace {

bool has_symbol(const Inspection& inspection, const std::string& name) {
  const auto& symbols = inspection.exported_symbols;
  return std::find(symbols.begin(), symbols.end(), name) != symbols.end();
}

// Points the marker fixtures' constructor at a fresh file for the scope.
class MarkerFile {
 public:
  explicit MarkerFile(const TempDir& dir) : path_(dir / "constructors-ran") {
    ::setenv("TASKHOST_FIXTURE_MARKER", path_.c_str(), 1);
  }
  ~MarkerFile() { ::unsetenv("TASKHOST_FIXTURE_MARKER"); }
  std::string contents() const { return fs::exists(path_) ? read_bytes(path_) : std::string(); }

 private:
  fs::path path_;
};

}  // namespace

TEST_CASE("inspect_file shows what a good plugin declares") {
  const fs::path file = fixture("loader-echo");
  const Inspection inspection = inspect_file(file);
  REQUIRE_MESSAGE(inspection.ok(), inspection.error);
  CHECK(inspection.file == file);
  CHECK(inspection.is_elf);
  CHECK(inspection.has_entry_point);
  REQUIRE(inspection.manifest.has_value());
  CHECK(inspection.manifest->name == "fixture-echo");
  CHECK(inspection.manifest->version == "1.0.0");
  CHECK(inspection.manifest->kinds == std::vector<std::string>{"fixture.echo"});
  CHECK(inspection.manifest->abi_major == TASKHOST_ABI_MAJOR);
  CHECK(inspection.manifest->abi_minor == TASKHOST_ABI_MINOR);
  // Defined and exported only: the entry point yes; hidden statics and imports from libc no.
  CHECK(has_symbol(inspection, TASKHOST_ENTRY_SYMBOL));
  CHECK_FALSE(has_symbol(inspection, "start"));
  CHECK_FALSE(has_symbol(inspection, "calloc"));
  CHECK_FALSE(has_symbol(inspection, "snprintf"));
}

TEST_CASE("inspect_file refuses a file that is not ELF") {
  TempDir dir;
  const fs::path file = dir / "script.so";
  write_bytes(file, "#!/bin/sh\necho not a plugin\n");
  const Inspection inspection = inspect_file(file);
  CHECK_FALSE(inspection.is_elf);
  CHECK(inspection.error == file.string() + ": not an ELF file");
}

TEST_CASE("inspect_file names a missing file") {
  const fs::path file = "/nonexistent/taskhost/missing.so";
  CHECK(inspect_file(file).error == file.string() + ": cannot open: No such file or directory");
}

TEST_CASE("inspect_image survives truncated and corrupted ELF images") {
  const std::string good = read_bytes(fixture("loader-echo"));
  REQUIRE(good.size() > 4096);
  for (size_t size : {size_t{4}, size_t{16}, size_t{63}, size_t{64}, good.size() / 2, good.size() - 1}) {
    CAPTURE(size);
    const Inspection inspection = inspect_image("cut.so", std::string_view(good).substr(0, size));
    CHECK_FALSE(inspection.ok());
    CHECK(inspection.error.starts_with("cut.so: "));
  }
  // Flip bytes all over the header and the section header table: every answer is an error or a
  // consistent inspection, never a read outside the image (the ASan build checks that part).
  for (size_t offset = 0; offset < 64; ++offset) {
    std::string bad = good;
    bad[offset] = static_cast<char>(bad[offset] ^ 0xff);
    (void)inspect_image("flip.so", bad);
  }
}

TEST_CASE("inspect_file refuses broken plugins with the reason, reading what it can") {
  SUBCASE("no entry point") {
    const fs::path file = fixture("loader-broken-no-entry");
    const Inspection inspection = inspect_file(file);
    CHECK(inspection.is_elf);
    CHECK_FALSE(inspection.has_entry_point);
    CHECK(inspection.manifest.has_value());
    CHECK(inspection.error == file.string() +
                                  ": no entry point: the file does not export function 'taskhost_plugin_entry' "
                                  "(declare it with TASKHOST_PLUGIN_ENTRY)");
  }
  SUBCASE("a manifest section that does not parse") {
    const fs::path file = fixture("loader-bad-manifest");
    const Inspection inspection = inspect_file(file);
    CHECK(inspection.has_manifest_section);  // `inspect` says so, rather than "manifest: none"
    CHECK_FALSE(inspection.manifest.has_value());
    CHECK(inspection.error.starts_with(file.string() + ": bad manifest: line 5 "));
    CHECK(inspection.error.ends_with("kind 'fixture.bad kind' has a space: kind names are written without spaces "
                                     "(they are CLI arguments and NATS subject tokens)"));
  }
  SUBCASE("no manifest section") {
    const fs::path file = fixture("loader-broken-no-manifest");
    const Inspection inspection = inspect_file(file);
    CHECK(inspection.has_entry_point);
    CHECK_FALSE(inspection.has_manifest_section);
    CHECK_FALSE(inspection.manifest.has_value());
    CHECK(inspection.error ==
          file.string() + ": no manifest: section '.taskhost_manifest' is missing (declare it with TASKHOST_MANIFEST)");
  }
  SUBCASE("ABI major 2") {
    const fs::path file = fixture("loader-abi2");
    const Inspection inspection = inspect_file(file);
    REQUIRE(inspection.manifest.has_value());
    CHECK(inspection.manifest->abi_major == 2);
    CHECK(inspection.error == file.string() + ": ABI refused: plugin ABI 2.0; this host accepts " +
                                  std::to_string(TASKHOST_ABI_MAJOR) + ".0 to " + std::to_string(TASKHOST_ABI_MAJOR) +
                                  "." + std::to_string(TASKHOST_ABI_MINOR));
  }
}

TEST_CASE("neither inspection nor a refused load runs plugin code; a real load does") {
  TempDir dir;
  MarkerFile marker(dir);
  RecordingHost host;

  CHECK(inspect_file(fixture("loader-marker")).ok());
  CHECK(inspect_file(fixture("loader-abi2")).error.find("ABI refused") != std::string::npos);
  CHECK(marker.contents().empty());

  // ABI 2.0 is refused from the manifest, before dlopen: its constructor never runs.
  const LoadResult refused = load_generation(fixture("loader-abi2"), 1, host.api());
  CHECK(refused.generation == nullptr);
  CHECK(contains(refused.error, "ABI refused: plugin ABI 2.0"));
  CHECK(marker.contents().empty());

  // The control: the same constructor in an accepted plugin (ABI 1.0, older minor) does leave its trace.
  const LoadResult loaded = load_generation(fixture("loader-marker"), 2, host.api());
  REQUIRE_MESSAGE(loaded.generation != nullptr, loaded.error);
  CHECK(marker.contents() == "fixture-marker\n");
}
