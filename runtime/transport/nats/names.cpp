#include "transport/nats/names.hpp"

#include <cctype>

namespace taskhost::transport::nats {
namespace {

bool plain(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Whether every dot-separated part of `kind` is a non-empty plain token: then it can stay readable.
bool dotted_plain(std::string_view kind) {
  if (kind.empty()) return false;
  size_t part = 0;
  for (char c : kind) {
    if (c == '.') {
      if (part == 0) return false;
      part = 0;
    } else if (plain(c)) {
      ++part;
    } else {
      return false;
    }
  }
  return part > 0;
}

}  // namespace

std::string encode_token(std::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(id.size());
  for (char c : id) {
    if (plain(c)) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('=');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    }
  }
  if (out.empty()) out = "=";  // an empty id still needs a non-empty token
  return out;
}

std::string decode_token(std::string_view token) {
  if (token == "=") return {};
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '=' && i + 2 < token.size()) {
      const int hi = hex_value(token[i + 1]);
      const int lo = hex_value(token[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(token[i]);
  }
  return out;
}

Names::Names(std::string prefix, std::string bucket) : prefix_(std::move(prefix)), bucket_(std::move(bucket)) {
  if (bucket_.empty()) {
    for (const char c : prefix_) bucket_.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    bucket_ += "_tasks";
  }
}

std::string Names::task_subject(std::string_view kind) const {
  return prefix_ + ".tasks." + (dotted_plain(kind) ? std::string(kind) : encode_token(kind));
}

std::string Names::consumer_name(std::string_view kind) const { return "kind_" + encode_token(kind); }

std::string Names::events_subject(std::string_view task_id) const {
  return prefix_ + ".events." + encode_token(task_id) + ".event";
}

std::string Names::completion_subject(std::string_view task_id) const {
  return prefix_ + ".events." + encode_token(task_id) + ".completion";
}

std::string Names::task_events_filter(std::string_view task_id) const {
  return prefix_ + ".events." + encode_token(task_id) + ".*";
}

std::string Names::control_subject(std::string_view task_id) const {
  return prefix_ + ".control." + encode_token(task_id);
}

std::string Names::heartbeat_subject(std::string_view task_id) const {
  return prefix_ + ".heartbeat." + encode_token(task_id);
}

std::string Names::task_key(std::string_view task_id) { return std::string(task_key_prefix) + encode_token(task_id); }

std::string Names::host_key(std::string_view worker_id) {
  return std::string(host_key_prefix) + encode_token(worker_id);
}

std::string Names::pull_subject(std::string_view consumer) const {
  return "$JS.API.CONSUMER.MSG.NEXT." + tasks_stream() + "." + std::string(consumer);
}

std::string Names::kv_subject(std::string_view key) const { return "$KV." + bucket_ + "." + std::string(key); }

}  // namespace taskhost::transport::nats
