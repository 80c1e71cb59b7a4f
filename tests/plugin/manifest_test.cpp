// The manifest text format (plugin.h) and the ABI rule "same major, plugin minor <= host minor".
#include "plugin/manifest.hpp"

#include <taskhost/plugin.h>

#include <doctest/doctest.h>

#include <string>

using taskhost::plugin::abi_compatible;
using taskhost::plugin::parse_manifest;

namespace {

const std::string kHostRange = "this host accepts " + std::to_string(TASKHOST_ABI_MAJOR) + ".0 to " +
                               std::to_string(TASKHOST_ABI_MAJOR) + "." + std::to_string(TASKHOST_ABI_MINOR);

std::string error_of(const std::string& text) {
  const auto parsed = parse_manifest(text);
  CHECK_FALSE(parsed.manifest.has_value());
  return parsed.error;
}

}  // namespace

TEST_CASE("parse_manifest reads what TASKHOST_MANIFEST writes") {
  const auto parsed = parse_manifest(TASKHOST_MANIFEST_TEXT("hello-c", "1.2.0", "hello.c,echo.c"));
  REQUIRE_MESSAGE(parsed.manifest.has_value(), parsed.error);
  CHECK(parsed.manifest->abi_major == TASKHOST_ABI_MAJOR);
  CHECK(parsed.manifest->abi_minor == TASKHOST_ABI_MINOR);
  CHECK(parsed.manifest->name == "hello-c");
  CHECK(parsed.manifest->version == "1.2.0");
  CHECK(parsed.manifest->kinds == std::vector<std::string>{"hello.c", "echo.c"});
}

TEST_CASE("parse_manifest skips keys it does not know, so later manifests can append keys") {
  const auto parsed = parse_manifest("taskhost-manifest 1\nabi=1.0\nname=n\nlicense=MIT\nversion=1\nkinds=k\n");
  REQUIRE_MESSAGE(parsed.manifest.has_value(), parsed.error);
  CHECK(parsed.manifest->kinds == std::vector<std::string>{"k"});
}

TEST_CASE("parse_manifest errors name the bad line") {
  CHECK(error_of("") == "empty manifest: expected first line \"taskhost-manifest 1\"");
  CHECK(error_of("taskhost-manifest 2\nabi=1.0\n") ==
        "line 1 \"taskhost-manifest 2\": expected \"taskhost-manifest 1\"");
  CHECK(error_of("taskhost-manifest 1\nabi=one.zero\nname=n\nversion=1\nkinds=k\n") ==
        "line 2 \"abi=one.zero\": abi must be MAJOR.MINOR, e.g. 1.0");
  CHECK(error_of("taskhost-manifest 1\nabi=1\n") == "line 2 \"abi=1\": abi must be MAJOR.MINOR, e.g. 1.0");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname = n\n") ==
        "line 3 \"name = n\": no spaces around '=' and at the line ends");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\njust text\n") == "line 3 \"just text\": expected key=value");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=a\nname=b\n") == "line 4 \"name=b\": key 'name' given twice");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\nversion=\n") ==
        "line 4 \"version=\": version must not be empty");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\nversion=1\nkinds=a,,b\n") ==
        "line 5 \"kinds=a,,b\": kinds must be a comma-separated list of non-empty names");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\nversion=1\nkinds=a,b,a\n") ==
        "line 5 \"kinds=a,b,a\": kind 'a' listed twice");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\nversion=1\nkinds=a,my kind\n") ==
        "line 5 \"kinds=a,my kind\": kind 'my kind' has a space: kind names are written without spaces (they are "
        "CLI arguments and NATS subject tokens)");
  // The name and version are shown in every listing too (a 0xFF in a version broke /v1/plugins).
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\nversion=1.0\xff\nkinds=a\n") ==
        "line 4 \"version=1.0?\": version must be UTF-8 text without control characters");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\x1b[31m\nversion=1\nkinds=a\n") ==
        "line 3 \"name=n?[31m\": name must be UTF-8 text without control characters");
  // Not UTF-8 (a lone 0xFF), and a control character: kind names are text in every listing.
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\nversion=1\nkinds=ok,bad\xff\n") ==
        "line 5 \"kinds=ok,bad?\": kind names must be UTF-8 text without control characters");
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\nversion=1\nkinds=a\x01\n") ==
        "line 5 \"kinds=a?\": kind names must be UTF-8 text without control characters");
  CHECK(parse_manifest("taskhost-manifest 1\nabi=1.0\nname=n\nversion=1\nkinds=gr\xc3\xbc\xc3\x9f.k\n").manifest);
  CHECK(error_of("taskhost-manifest 1\nabi=1.0\nname=n\nversion=1\n") == "missing key 'kinds'");
  CHECK(error_of("taskhost-manifest 1\nname=n\nversion=1\nkinds=k\n") == "missing key 'abi'");
}

TEST_CASE("parse_manifest quotes a garbage line printably and briefly") {
  const std::string error = error_of("taskhost-manifest 1\n" + std::string(200, '\x01') + "\n");
  CHECK(error.starts_with("line 2 \"" + std::string(80, '?') + "...\": "));
}

TEST_CASE("abi_compatible: same major, plugin minor <= host minor") {
  std::string why;
  CHECK(abi_compatible(TASKHOST_ABI_MAJOR, 0, &why));
  CHECK(abi_compatible(TASKHOST_ABI_MAJOR, TASKHOST_ABI_MINOR, &why));
  CHECK(why.empty());

  CHECK_FALSE(abi_compatible(TASKHOST_ABI_MAJOR, TASKHOST_ABI_MINOR + 1, &why));
  CHECK(why == "plugin ABI " + std::to_string(TASKHOST_ABI_MAJOR) + "." + std::to_string(TASKHOST_ABI_MINOR + 1) +
                   "; " + kHostRange);
  CHECK_FALSE(abi_compatible(TASKHOST_ABI_MAJOR + 1, 0, &why));
  CHECK(why == "plugin ABI " + std::to_string(TASKHOST_ABI_MAJOR + 1) + ".0; " + kHostRange);
  CHECK_FALSE(abi_compatible(TASKHOST_ABI_MAJOR - 1, 9, &why));
  CHECK(why == "plugin ABI " + std::to_string(TASKHOST_ABI_MAJOR - 1) + ".9; " + kHostRange);
}
