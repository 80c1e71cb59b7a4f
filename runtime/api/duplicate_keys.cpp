#include "api/duplicate_keys.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include <unordered_set>
#include <vector>

namespace taskhost::api {
namespace {

// A SAX handler that only looks at keys: one set of the keys seen per open object (arrays open none).
struct KeyWatcher {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);
  using ec_t = boost::json::error_code;
  using sv_t = boost::json::string_view;

  std::vector<std::unordered_set<std::string>> open;  // one per object being read, innermost last
  std::string key;                                     // the key being read (keys may come in parts)
  std::optional<std::string> duplicate;

  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t&) {
    open.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, ec_t&) {
    open.pop_back();
    return true;
  }
  bool on_array_begin(ec_t&) { return true; }
  bool on_array_end(std::size_t, ec_t&) { return true; }
  bool on_key_part(sv_t s, std::size_t, ec_t&) {
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(sv_t s, std::size_t, ec_t&) {
    key.append(s.data(), s.size());
    if (!open.back().insert(key).second && !duplicate) duplicate = key;
    key.clear();
    return true;
  }
  bool on_string_part(sv_t, std::size_t, ec_t&) { return true; }
  bool on_string(sv_t, std::size_t, ec_t&) { return true; }
  bool on_number_part(sv_t, ec_t&) { return true; }
  bool on_int64(std::int64_t, sv_t, ec_t&) { return true; }
  bool on_uint64(std::uint64_t, sv_t, ec_t&) { return true; }
  bool on_double(double, sv_t, ec_t&) { return true; }
  bool on_bool(bool, ec_t&) { return true; }
  bool on_null(ec_t&) { return true; }
  bool on_comment_part(sv_t, ec_t&) { return true; }
  bool on_comment(sv_t, ec_t&) { return true; }
};

}  // namespace

std::optional<std::string> first_duplicate_key(std::string_view text) {
  boost::json::basic_parser<KeyWatcher> parser{boost::json::parse_options{}};
  boost::json::error_code ec;
  parser.write_some(false, text.data(), text.size(), ec);
  return parser.handler().duplicate;
}

}  // namespace taskhost::api
