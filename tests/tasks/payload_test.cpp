// The payload codec must agree with protobuf's own JSON mapping (which it replaces on the hot path):
// every value written parses back, through protobuf's parser, to the same Value.
#include "tasks/payload.hpp"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <doctest/doctest.h>

#include <cmath>

using namespace taskhost::tasks;
using google::protobuf::Value;

namespace {
Value parse_with_protobuf(const std::string& json) {
  Value v;
  REQUIRE_MESSAGE(google::protobuf::util::JsonStringToMessage(json, &v).ok(), json);
  return v;
}
std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }
}  // namespace

TEST_CASE("values written as JSON read back identically through protobuf's own parser") {
  const char* samples[] = {
      R"(null)", R"(true)", R"(0)", R"(-17)", R"(3.25)", R"(1e-7)", R"(12345678901234)", R"("")",
      R"("quote \" backslash \\ newline \n tab \t bell \u0007 unicode é ✓")",
      R"({"name":"Ada","n":[1,2,{"deep":[true,false,null]}],"empty":{},"list":[]})",
  };
  for (const char* json : samples) {
    const Value original = parse_with_protobuf(json);
    const std::string written = encode_value(original, TH_ENCODING_JSON);
    CHECK_MESSAGE(google::protobuf::util::MessageDifferencer::Equals(parse_with_protobuf(written), original), written);
    Value decoded;
    std::string error;
    REQUIRE(decode_value(bytes(written), TH_ENCODING_JSON, &decoded, &error));
    CHECK_MESSAGE(google::protobuf::util::MessageDifferencer::Equals(decoded, original), written);
  }
}

TEST_CASE("integral numbers are written without a fraction, others in shortest round-trip form") {
  CHECK(encode_value(parse_with_protobuf("1"), TH_ENCODING_JSON) == "1");
  CHECK(encode_value(parse_with_protobuf("-2.5"), TH_ENCODING_JSON) == "-2.5");
  CHECK(encode_value(parse_with_protobuf("0.1"), TH_ENCODING_JSON) == "0.1");
  Value unset;
  CHECK(encode_value(unset, TH_ENCODING_JSON) == "null");
}

TEST_CASE("malformed payloads are refused with the parser's reason; empty means null") {
  Value v;
  std::string error;
  CHECK_FALSE(decode_value(bytes("{not json"), TH_ENCODING_JSON, &v, &error));
  CHECK(error.find("not valid JSON") != std::string::npos);
  CHECK_FALSE(decode_value(bytes("\x01\x02garbage"), TH_ENCODING_PROTOBUF, &v, &error));
  CHECK(decode_value({}, TH_ENCODING_JSON, &v, &error));
  CHECK(v.kind_case() == Value::kNullValue);
}

TEST_CASE("a value nested deeper than kMaxValueDepth is refused in either encoding; that depth is read") {
  const auto nested = [](int levels) { return std::string(levels, '[') + std::string(levels, ']'); };
  Value v;
  std::string error;
  CHECK(decode_value(bytes(nested(kMaxValueDepth)), TH_ENCODING_JSON, &v, &error));
  const std::string at_limit = encode_value(v, TH_ENCODING_PROTOBUF);
  CHECK(decode_value(bytes(at_limit), TH_ENCODING_PROTOBUF, &v, &error));

  CHECK_FALSE(decode_value(bytes(nested(kMaxValueDepth + 1)), TH_ENCODING_JSON, &v, &error));
  CHECK(error == "payload nests deeper than 20 levels of arrays and objects");
  Value deep;
  Value* inner = &deep;
  for (int i = 0; i < kMaxValueDepth; ++i) inner = inner->mutable_list_value()->add_values();
  inner->set_bool_value(true);  // kMaxValueDepth lists around a scalar: one level too many
  error.clear();
  CHECK_FALSE(decode_value(bytes(deep.SerializeAsString()), TH_ENCODING_PROTOBUF, &v, &error));
  CHECK(error == "payload nests deeper than 20 levels of arrays and objects");
}

TEST_CASE("protobuf encoding round-trips") {
  const Value original = parse_with_protobuf(R"({"a":[1,"x",false]})");
  const std::string wire = encode_value(original, TH_ENCODING_PROTOBUF);
  Value back;
  std::string error;
  REQUIRE(decode_value(bytes(wire), TH_ENCODING_PROTOBUF, &back, &error));
  CHECK(google::protobuf::util::MessageDifferencer::Equals(back, original));
}

TEST_CASE("encode_value says when JSON cannot carry a value exactly (NaN, infinities, -0)") {
  bool lossy = true;
  Value plain = parse_with_protobuf(R"({"a":[1,2.5,"x"],"b":0})");
  (void)encode_value(plain, TH_ENCODING_JSON, &lossy);
  CHECK_FALSE(lossy);
  for (const double d : {std::nan(""), HUGE_VAL, -HUGE_VAL, -0.0}) {
    Value v;
    v.mutable_list_value()->add_values()->set_number_value(d);
    lossy = false;
    (void)encode_value(v, TH_ENCODING_JSON, &lossy);
    CHECK(lossy);
    lossy = true;
    (void)encode_value(v, TH_ENCODING_PROTOBUF, &lossy);
    CHECK_FALSE(lossy);  // protobuf is always exact
  }
}
