// SHA-256 (FIPS 180-4), the content address of a plugin image: two files with the same hash are the same
// plugin build, so a rescan can leave an unchanged file alone and a memfd name can say which build it is.
//
// Thread rule: pure functions, safe from any thread. Ownership: the result is a fresh string.
#pragma once

#include <string>
#include <string_view>

namespace taskhost::plugin {

// The SHA-256 digest of `bytes` as 64 lowercase hex characters.
std::string sha256_hex(std::string_view bytes);

}  // namespace taskhost::plugin
