// Request bodies with a key twice in one object. Boost.JSON keeps the last of duplicate keys, so
// {"kind":"a", ..., "kind":"b"} would run kind b, and {"input":{"n":1,"n":2}} pass n = 2, without a word.
// Protobuf's own JSON parser refuses such a body; the API's simple forms (parsed with Boost.JSON) must too.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace taskhost::api {

// The first key that appears twice in one object of the JSON text `text`, at any depth; nullopt when none
// does (or when `text` is not JSON: its parse reports that).
std::optional<std::string> first_duplicate_key(std::string_view text);

}  // namespace taskhost::api
