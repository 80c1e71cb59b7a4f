#include "common/json_text.hpp"

#include <boost/json/parse.hpp>

namespace taskhost {

std::string json_text_problem(std::string_view text) {
  boost::system::error_code ec;
  boost::json::parse_options deep;
  deep.max_depth = 256;
  boost::json::parse(text, ec, {}, deep);
  return ec ? ec.message() : std::string();
}

}  // namespace taskhost
