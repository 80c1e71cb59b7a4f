#include "transport/nats/wire.hpp"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <charconv>
#include <chrono>

namespace taskhost::transport::nats {

namespace pbio = google::protobuf::io;
using google::protobuf::internal::WireFormatLite;

std::string encode_items(const std::vector<v1::WatchItem>& items) {
  std::string out;
  {
    pbio::StringOutputStream raw(&out);
    pbio::CodedOutputStream coded(&raw);
    for (const auto& item : items) {
      coded.WriteVarint32(static_cast<uint32_t>(item.ByteSizeLong()));
      item.SerializeWithCachedSizes(&coded);
    }
  }
  return out;
}

namespace {

// WatchItem is a oneof of messages: its bytes are the tag of the one set, its length, its bytes.
void append_item(std::string& batch, int field, const google::protobuf::MessageLite& inner) {
  const size_t inner_size = inner.ByteSizeLong();
  const uint32_t tag = WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
  const size_t item_size = pbio::CodedOutputStream::VarintSize32(tag) +
                           pbio::CodedOutputStream::VarintSize64(inner_size) + inner_size;
  pbio::StringOutputStream raw(&batch);
  pbio::CodedOutputStream out(&raw);
  out.WriteVarint64(item_size);
  out.WriteVarint32(tag);
  out.WriteVarint64(inner_size);
  inner.SerializeWithCachedSizes(&out);
}

}  // namespace

void append_event_item(std::string& batch, const v1::TaskEvent& event) {
  append_item(batch, v1::WatchItem::kEventFieldNumber, event);
}

void append_completion_item(std::string& batch, const v1::TaskCompletion& completion) {
  append_item(batch, v1::WatchItem::kCompletionFieldNumber, completion);
}

void append_status_item(std::string& batch, const v1::TaskStatus& status) {
  append_item(batch, v1::WatchItem::kStatusFieldNumber, status);
}

std::optional<std::vector<v1::WatchItem>> decode_items(std::string_view bytes) {
  std::vector<v1::WatchItem> items;
  pbio::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  while (in.CurrentPosition() < static_cast<int>(bytes.size())) {
    uint32_t size = 0;
    if (!in.ReadVarint32(&size)) return std::nullopt;
    auto limit = in.PushLimit(static_cast<int>(size));
    v1::WatchItem item;
    if (!item.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage()) return std::nullopt;
    in.PopLimit(limit);
    items.push_back(std::move(item));
  }
  return items;
}

// TaskRecord field numbers. Append only; never reuse a number.
namespace field {
constexpr int task_id = 1;
constexpr int kind = 2;
constexpr int owner = 3;
constexpr int attempt = 4;
constexpr int state = 5;
constexpr int assignment = 6;
constexpr int checkpoint = 7;
constexpr int ack_on_completion = 8;
constexpr int created_unix_ms = 9;
constexpr int updated_unix_ms = 10;
constexpr int control_through = 11;  // ControlMark::through (hosts before fields 12 and 13 read only this)
constexpr int control_taken_through = 12;
constexpr int control_held = 13;     // packed
constexpr int rescued_from = 14;
}  // namespace field

std::string encode_record(const TaskRecord& r) {
  std::string out;
  {
    pbio::StringOutputStream raw(&out);
    pbio::CodedOutputStream o(&raw);
    WireFormatLite::WriteString(field::task_id, r.task_id, &o);
    WireFormatLite::WriteString(field::kind, r.kind, &o);
    if (!r.owner.empty()) WireFormatLite::WriteString(field::owner, r.owner, &o);
    WireFormatLite::WriteUInt32(field::attempt, r.attempt, &o);
    WireFormatLite::WriteEnum(field::state, r.state, &o);
    if (!r.assignment.empty()) WireFormatLite::WriteBytes(field::assignment, r.assignment, &o);
    if (!r.checkpoint.empty()) WireFormatLite::WriteBytes(field::checkpoint, r.checkpoint, &o);
    if (r.ack_on_completion) WireFormatLite::WriteBool(field::ack_on_completion, true, &o);
    WireFormatLite::WriteInt64(field::created_unix_ms, r.created_unix_ms, &o);
    WireFormatLite::WriteInt64(field::updated_unix_ms, r.updated_unix_ms, &o);
    if (r.control.through != 0) WireFormatLite::WriteUInt64(field::control_through, r.control.through, &o);
    if (r.control.taken_through != 0) {
      WireFormatLite::WriteUInt64(field::control_taken_through, r.control.taken_through, &o);
      std::string packed;
      {
        pbio::StringOutputStream raw_held(&packed);
        pbio::CodedOutputStream h(&raw_held);
        for (uint64_t seq : r.control.held) h.WriteVarint64(seq);
      }
      WireFormatLite::WriteBytes(field::control_held, packed, &o);
    }
    if (!r.rescued_from.empty()) WireFormatLite::WriteString(field::rescued_from, r.rescued_from, &o);
  }
  return out;
}

std::optional<TaskRecord> decode_record(std::string_view bytes) {
  TaskRecord r;
  pbio::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const auto type = WireFormatLite::GetTagWireType(tag);
    bool ok = true;
    auto read_string = [&](std::string* s) {
      return type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED && WireFormatLite::ReadString(&in, s);
    };
    auto read_varint = [&](uint64_t* v) { return type == WireFormatLite::WIRETYPE_VARINT && in.ReadVarint64(v); };
    // A repeated varint, packed (as written) or one per tag (as any protobuf encoder may write it).
    auto read_held = [&](std::vector<uint64_t>& out) {
      uint64_t seq = 0;
      if (type == WireFormatLite::WIRETYPE_VARINT) {
        if (!in.ReadVarint64(&seq)) return false;
        out.push_back(seq);
        return true;
      }
      uint32_t length = 0;
      if (type != WireFormatLite::WIRETYPE_LENGTH_DELIMITED || !in.ReadVarint32(&length)) return false;
      const auto limit = in.PushLimit(static_cast<int>(length));
      while (in.BytesUntilLimit() > 0) {
        if (!in.ReadVarint64(&seq)) return false;
        out.push_back(seq);
      }
      in.PopLimit(limit);
      return true;
    };
    uint64_t v = 0;
    switch (number) {
      case field::task_id: ok = read_string(&r.task_id); break;
      case field::kind: ok = read_string(&r.kind); break;
      case field::owner: ok = read_string(&r.owner); break;
      case field::assignment: ok = read_string(&r.assignment); break;
      case field::checkpoint: ok = read_string(&r.checkpoint); break;
      case field::attempt: ok = read_varint(&v); r.attempt = static_cast<uint32_t>(v); break;
      case field::state: ok = read_varint(&v); r.state = static_cast<v1::TaskState>(v); break;
      case field::ack_on_completion: ok = read_varint(&v); r.ack_on_completion = v != 0; break;
      case field::created_unix_ms: ok = read_varint(&v); r.created_unix_ms = static_cast<int64_t>(v); break;
      case field::updated_unix_ms: ok = read_varint(&v); r.updated_unix_ms = static_cast<int64_t>(v); break;
      case field::control_through: ok = read_varint(&v); r.control.through = v; break;
      case field::control_taken_through: ok = read_varint(&v); r.control.taken_through = v; break;
      case field::control_held: ok = read_held(r.control.held); break;
      case field::rescued_from: ok = read_string(&r.rescued_from); break;
      default: ok = WireFormatLite::SkipField(&in, tag); break;
    }
    if (!ok) return std::nullopt;
  }
  if (in.CurrentPosition() != static_cast<int>(bytes.size())) return std::nullopt;
  if (!v1::TaskState_IsValid(r.state)) r.state = v1::TASK_STATE_UNSPECIFIED;
  // A mark this host would not have written (held sequences out of order or outside their range, or more
  // of them than it records) is read as its plain `through`: fewer messages skipped, none lost.
  ControlMark& m = r.control;
  const bool held_ok = m.held.size() <= ControlMark::kMaxHeld && std::is_sorted(m.held.begin(), m.held.end()) &&
                       std::adjacent_find(m.held.begin(), m.held.end()) == m.held.end() &&
                       (m.held.empty() || (m.held.front() > m.through && m.held.back() <= m.taken_through));
  if (m.taken_through <= m.through || !held_ok) {
    m.taken_through = 0;
    m.held.clear();
  }
  return r;
}

std::optional<DeliveryInfo> parse_ack_reply(std::string_view reply) {
  constexpr std::string_view kPrefix = "$JS.ACK.";
  if (reply.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  std::vector<std::string_view> tokens;
  size_t start = 0;
  for (size_t i = 0; i <= reply.size(); ++i) {
    if (i == reply.size() || reply[i] == '.') {
      tokens.push_back(reply.substr(start, i - start));
      start = i + 1;
    }
  }
  // Short form: $JS ACK stream consumer delivered sseq dseq ts pending (9 tokens). Long form adds the
  // domain and account hash after ACK, and a random token at the end (12 tokens).
  size_t first = 0;
  if (tokens.size() == 9) {
    first = 4;
  } else if (tokens.size() >= 11) {
    first = 6;
  } else {
    return std::nullopt;
  }
  auto number = [](std::string_view t, uint64_t* out) {
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), *out);
    return ec == std::errc() && p == t.data() + t.size();
  };
  DeliveryInfo info;
  uint64_t ts = 0;
  if (!number(tokens[first], &info.delivered) || !number(tokens[first + 1], &info.stream_seq) ||
      !number(tokens[first + 3], &ts)) {
    return std::nullopt;
  }
  info.stored_unix_ns = static_cast<int64_t>(ts);
  return info;
}


}  // namespace taskhost::transport::nats
