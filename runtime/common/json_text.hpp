// Whether plugin-given text is one JSON value, for the schemas clients are shown as JSON (a kind's
// discovery schemas, an input request's expected schema). Nesting may go 256 levels deep: a schema nests
// deeper than the data it describes (the SDK test kit's internal::JsonCheck allows the same).
#pragma once

#include <string>
#include <string_view>

namespace taskhost {

// Why `text` is not one JSON value, in Boost.JSON's words ("syntax error", ...); empty when it is.
std::string json_text_problem(std::string_view text);

}  // namespace taskhost
