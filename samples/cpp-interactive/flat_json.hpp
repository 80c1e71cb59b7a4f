// Just enough JSON for this sample: read a number, a bool or a string member of a flat object, and
// quote a string for output. A real plugin would use a JSON library; the sample stays dependency-free.
// Thread rule: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace interactive {

// True when `json` (after leading whitespace) is an object.
bool looks_like_object(std::string_view json);

// The value of top-level member `key`, when present and of that type. Nested objects are not searched
// reliably: keep inputs flat.
std::optional<double> json_number(std::string_view json, std::string_view key);
std::optional<bool> json_bool(std::string_view json, std::string_view key);

// `text` as a JSON string literal, quotes included.
std::string json_quote(std::string_view text);

}  // namespace interactive
