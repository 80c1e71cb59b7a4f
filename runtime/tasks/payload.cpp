#include "tasks/payload.hpp"

#include <google/protobuf/util/json_util.h>

namespace taskhost::tasks {

std::string encode_value(const google::protobuf::Value& value, th_encoding encoding) {
  std::string out;
  if (encoding == TH_ENCODING_PROTOBUF) {
    value.SerializeToString(&out);
  } else if (value.kind_case() == google::protobuf::Value::KIND_NOT_SET) {
    out = "null";
  } else {
    (void)google::protobuf::util::MessageToJsonString(value, &out);
  }
  return out;
}

bool decode_value(std::span<const uint8_t> bytes, th_encoding encoding, google::protobuf::Value* out,
                  std::string* error) {
  out->Clear();
  if (bytes.empty()) {
    out->set_null_value(google::protobuf::NULL_VALUE);
    return true;
  }
  if (encoding == TH_ENCODING_PROTOBUF) {
    if (out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return true;
    *error = "payload is not a serialized google.protobuf.Value";
    return false;
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const auto status = google::protobuf::util::JsonStringToMessage(text, out);
  if (status.ok()) return true;
  *error = "payload is not valid JSON: " + std::string(status.message());
  return false;
}

}  // namespace taskhost::tasks
