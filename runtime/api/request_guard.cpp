#include "api/request_guard.hpp"

#include <boost/algorithm/string/case_conv.hpp>
#include <boost/asio/ip/address.hpp>

#include <algorithm>

namespace taskhost::api {

RequestGuard::RequestGuard(std::vector<std::string> host_names) : names_(std::move(host_names)) {
  for (auto& n : names_) boost::algorithm::to_lower(n);
}

std::string host_header_name(std::string_view value) {
  if (value.starts_with('[')) {  // an IPv6 literal, with or without a port
    const size_t close = value.find(']');
    if (close == std::string_view::npos) return {};
    const std::string_view rest = value.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return {};
    return std::string(value.substr(1, close - 1));
  }
  const size_t colon = value.find(':');
  if (colon != std::string_view::npos && value.find(':', colon + 1) != std::string_view::npos) {
    return std::string(value);  // a bare IPv6 literal (not valid in Host, but unambiguous)
  }
  return std::string(value.substr(0, colon));
}

bool RequestGuard::known_host(std::string_view name) const {
  if (name.empty()) return false;
  boost::system::error_code ec;
  (void)boost::asio::ip::make_address(std::string(name), ec);
  if (!ec) return true;  // an IP literal: a rebinding page cannot make its requests carry one
  std::string lower(name);
  boost::algorithm::to_lower(lower);
  if (lower.ends_with('.')) lower.pop_back();  // "localhost." is "localhost"
  return lower == "localhost" || std::find(names_.begin(), names_.end(), lower) != names_.end();
}

std::optional<RequestRefusal> RequestGuard::check(std::optional<std::string_view> origin,
                                                  std::optional<std::string_view> host) const {
  if (origin) {
    return RequestRefusal{403, "refused a request sent by a web page (Origin: " + std::string(*origin) +
                                   "): the API has no authentication, so pages may not use it"};
  }
  // HTTP/1.0 clients may leave Host out; browsers never do.
  if (host && !known_host(host_header_name(*host))) {
    return RequestRefusal{403, "refused a request for Host '" + std::string(*host) +
                                   "': not an address of this API (a page using DNS rebinding?); a name "
                                   "clients really use belongs in [api] allowed_hosts"};
  }
  return std::nullopt;
}

}  // namespace taskhost::api
