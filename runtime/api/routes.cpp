#include "api/routes.hpp"

#include <cctype>

namespace taskhost::api {
namespace {

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool decode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;  // "%" needs two hex digits after it
      const int hi = hex(in[i + 1]);
      const int lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (plus_is_space && in[i] == '+') {
      out += ' ';
    } else {
      out += in[i];
    }
  }
  return true;
}

}  // namespace

Target parse_target(std::string_view target) {
  Target t;
  std::string_view path = target;
  std::string_view query;
  if (const auto q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = target.substr(q + 1);
  }
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    std::string segment;
    if (!decode(path.substr(0, slash), segment, false)) t.ok = false;
    t.segments.push_back(std::move(segment));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    std::string key, value;
    if (!decode(pair.substr(0, eq), key, true)) t.ok = false;
    if (eq != std::string_view::npos && !decode(pair.substr(eq + 1), value, true)) t.ok = false;
    if (!key.empty()) t.query[key] = value;
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
  }
  return t;
}

Route route(std::string_view method, const Target& target) {
  const auto& s = target.segments;
  Route r;
  auto pick = [&](std::string_view allowed, Endpoint e) {
    if (method == allowed) {
      r.endpoint = e;
    } else {
      r.endpoint = Endpoint::method_not_allowed;
      r.allow = std::string(allowed);
    }
    return r;
  };
  if (s.size() == 1 && s[0] == "metrics") return pick("GET", Endpoint::metrics);
  if (s.empty() || s[0] != "v1") return r;
  if (s.size() == 2) {
    if (s[1] == "health") return pick("GET", Endpoint::health);
    if (s[1] == "watch") return pick("GET", Endpoint::watch);
    if (s[1] == "plugins") return pick("GET", Endpoint::plugins);
    if (s[1] == "reload") return pick("POST", Endpoint::reload);
    if (s[1] == "tasks") {
      if (method == "POST") return r.endpoint = Endpoint::submit, r;
      if (method == "GET") return r.endpoint = Endpoint::list, r;
      r.endpoint = Endpoint::method_not_allowed;
      r.allow = "GET, POST";
      return r;
    }
    return r;
  }
  if (s.size() < 3 || s[1] != "tasks" || s[2].empty()) return r;  // "/v1" alone names nothing
  r.task_id = s[2];
  if (s.size() == 3) return pick("GET", Endpoint::status);
  if (s.size() == 4) {
    if (s[3] == "messages") return pick("POST", Endpoint::message);
    if (s[3] == "cancel") return pick("POST", Endpoint::cancel);
    if (s[3] == "wait") return pick("GET", Endpoint::wait);
  }
  r.task_id.clear();
  return r;
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

}  // namespace taskhost::api
