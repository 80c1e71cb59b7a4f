// Payload encoding across the ABI: a kind declares JSON or protobuf (th_encoding); the host converts the
// wire's google.protobuf.Value to exactly that, once, and decodes what the plugin hands back.
#pragma once

#include <taskhost/plugin.h>

#include <google/protobuf/struct.pb.h>

#include <span>
#include <string>

namespace taskhost::tasks {

// Encodes `value` for a kind that wants `encoding`. With `lossy`, also says whether decoding the result
// would not give `value` back exactly (JSON has no NaN, infinities or -0; protobuf is always exact).
std::string encode_value(const google::protobuf::Value& value, th_encoding encoding, bool* lossy = nullptr);

// How deep a value a plugin may hand back may nest (arrays and objects inside each other). Events and
// completions are wrapped in a few more levels on their way out (API replies, task lists), and every
// JSON reader and writer on the way has a depth limit of its own (Boost.JSON's and protobuf's: 32
// levels of JSON): deeper values made whole task listings fail for every task.
inline constexpr int kMaxValueDepth = 20;

// Decodes plugin bytes into `out`. Empty bytes decode to JSON null. Returns false and sets `error`
// (naming the encoding and the parser's complaint) on malformed input, and on a value nested deeper
// than kMaxValueDepth.
bool decode_value(std::span<const uint8_t> bytes, th_encoding encoding, google::protobuf::Value* out,
                  std::string* error);

}  // namespace taskhost::tasks
