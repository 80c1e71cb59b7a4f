#include "transport/nats/record_store.hpp"

#include "common/log.hpp"

#include <cstring>

namespace taskhost::transport::nats {
namespace {

// The KV protocol's tombstone marker.
constexpr const char* kKvOperation = "KV-Operation";

bool is_tombstone(natsMsg* msg) {
  const char* op = nullptr;
  if (natsMsgHeader_Get(msg, kKvOperation, &op) != NATS_OK || op == nullptr) return false;
  return std::strcmp(op, "DEL") == 0 || std::strcmp(op, "PURGE") == 0;
}

bool not_found(natsStatus s, jsErrCode code) {
  return s == NATS_NOT_FOUND || code == kJsNoMessageFound;
}

// The compare-and-set every record write and delete makes: `expected` 0 means "the key has no value yet",
// otherwise "its last revision is still `expected`".
jsPubOptions expecting(uint64_t expected) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  if (expected == 0) {
    po.ExpectNoMessage = true;
  } else {
    po.ExpectLastSubjectSeq = expected;
  }
  return po;
}

}  // namespace

template <typename Call>
natsStatus RecordStore::reading(Call&& call) const {
  return patient_ ? retry_read(call) : retry_no_responders(call);
}

template <typename Call>
natsStatus RecordStore::writing(Call&& call) const {
  return retry_no_responders(call, deadline_in(patient_ ? kClientElectionWait : kHostElectionWait));
}

std::optional<std::string> RecordStore::last_on(const std::string& stream, const std::string& subject) const {
  natsMsg* msg = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  auto get = [&] { return get_last_msg(&msg, connection_.js(), stream, subject, &code); };
  natsStatus s = reading(get);
  if (not_found(s, code)) return std::nullopt;
  check(s, "read last message of " + subject, code);
  std::string data(natsMsg_GetData(msg) ? natsMsg_GetData(msg) : "", static_cast<size_t>(natsMsg_GetDataLength(msg)));
  natsMsg_Destroy(msg);
  return data;
}

RecordStore::Raw RecordStore::read(const std::string& key) const {
  return read_with(key, [this](auto& get) { return reading(get); });
}

RecordStore::Raw RecordStore::read_until(const std::string& key, std::chrono::steady_clock::time_point until) const {
  return read_with(key, [until](auto& get) { return retry_read(get, until); });
}

template <typename Call>
RecordStore::Raw RecordStore::read_with(const std::string& key, Call&& retry) const {
  Raw raw;
  natsMsg* msg = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string subject = names_.kv_subject(key);
  auto get = [&] { return get_last_msg(&msg, connection_.js(), names_.kv_stream(), subject, &code); };
  natsStatus s = retry(get);
  if (not_found(s, code)) return raw;
  check(s, "read KV key " + key, code);
  raw.revision = natsMsg_GetSequence(msg);
  raw.exists = !is_tombstone(msg);
  if (raw.exists && natsMsg_GetData(msg) != nullptr) {
    raw.value.assign(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  }
  natsMsg_Destroy(msg);
  return raw;
}

uint64_t RecordStore::write(const std::string& key, std::string_view value, uint64_t expected) const {
  jsPubOptions po = expecting(expected);
  jsPubAck* pa = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string subject = names_.kv_subject(key);
  natsStatus s = writing([&] {
    return js_Publish(&pa, connection_.js(), subject.c_str(), value.data(), static_cast<int>(value.size()), &po, &code);
  });
  if (s != NATS_OK && code == kJsWrongLastSequence) return 0;
  check(s, "write KV key " + key, code);
  const uint64_t rev = pa->Sequence;
  jsPubAck_Destroy(pa);
  return rev;
}

bool RecordStore::erase(const std::string& key, uint64_t expected) const {
  natsMsg* msg = nullptr;
  const std::string subject = names_.kv_subject(key);
  check(natsMsg_Create(&msg, subject.c_str(), nullptr, nullptr, 0), "build KV delete");
  natsMsgHeader_Set(msg, kKvOperation, "DEL");
  jsPubOptions po = expecting(expected);
  jsPubAck* pa = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = writing([&] { return js_PublishMsg(&pa, connection_.js(), msg, &po, &code); });
  natsMsg_Destroy(msg);
  if (s != NATS_OK && code == kJsWrongLastSequence) return false;
  check(s, "delete KV key " + key, code);
  const uint64_t marker = pa->Sequence;
  jsPubAck_Destroy(pa);
  compact(key, marker);
  return true;
}

void RecordStore::compact(const std::string& key, uint64_t through) const {
  const std::string subject = names_.kv_subject(key);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Stream.Purge.Subject = subject.c_str();
  jo.Stream.Purge.Sequence = through + 1;  // "up to but not including"
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = writing([&] { return js_PurgeStream(connection_.js(), names_.kv_stream().c_str(), &jo, &code); });
  if (s != NATS_OK) log::warn("nats: {}", describe(s, "compact KV key " + key, code));
}

std::optional<RecordStore::Task> RecordStore::task(const std::string& task_id, uint64_t* revision) const {
  Raw raw = read(Names::task_key(task_id));
  if (revision != nullptr) *revision = raw.revision;
  if (!raw.exists) return std::nullopt;
  auto record = decode_record(raw.value);
  if (!record) return std::nullopt;
  return Task{std::move(*record), raw.revision};
}

uint64_t RecordStore::write_task(const TaskRecord& record, uint64_t expected) const {
  const uint64_t rev = write(Names::task_key(record.task_id), encode_record(record), expected);
  if (rev != 0) return rev;
  // Lost the compare-and-set: unless what is there is this very write (stored by an earlier try whose
  // answer was lost), someone else wrote first.
  auto now = task(record.task_id);
  if (now && now->record.owner == record.owner && now->record.attempt == record.attempt) return now->revision;
  return 0;
}

bool RecordStore::completion_exists(const std::string& task_id) const {
  return last_on(names_.events_stream(), names_.completion_subject(task_id)).has_value();
}

std::optional<std::string> RecordStore::completion_batch(const std::string& task_id) const {
  return last_on(names_.events_stream(), names_.completion_subject(task_id));
}

std::optional<std::string> RecordStore::last_events_batch(const std::string& task_id) const {
  return last_on(names_.events_stream(), names_.events_subject(task_id));
}

}  // namespace taskhost::transport::nats
