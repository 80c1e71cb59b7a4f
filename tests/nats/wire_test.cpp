// The transport's own encodings: subject tokens, WatchItem batches, task records, ack metadata.
#include "transport/nats/names.hpp"
#include "transport/nats/wire.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace taskhost;
using namespace taskhost::transport::nats;

TEST_CASE("tokens keep plain ids readable and make any other id one subject token") {
  CHECK(encode_token("task-42_a") == "task-42_a");
  CHECK(encode_token("a.b c*>") == "a=2Eb=20c=2A=3E");
  CHECK(encode_token("") == "=");
  for (std::string id : {"plain", "with.dot", "sp ace", "uni\xc3\xa9", "=3D literal", "", "*>."}) {
    const auto token = encode_token(id);
    CHECK(token.find_first_of(".*> ") == std::string::npos);
    CHECK(decode_token(token) == id);
  }
}

TEST_CASE("kinds keep their dots when every part is plain, else become one token") {
  Names n("TH", "bucket");
  CHECK(n.task_subject("hello.greet") == "TH.tasks.hello.greet");
  CHECK(n.task_subject("odd kind") == "TH.tasks.odd=20kind");
  CHECK(n.task_subject(".lead") == "TH.tasks.=2Elead");
  CHECK(n.consumer_name("hello.greet") == "kind_hello=2Egreet");
  CHECK(n.completion_subject("a.b") == "TH.events.a=2Eb.completion");
  CHECK(n.task_events_filter("a.b") == "TH.events.a=2Eb.*");
  CHECK(Names::task_key("x y") == "task.x=20y");
  CHECK(n.kv_subject(Names::host_key("w1")) == "$KV.bucket.host.w1");
}

TEST_CASE("each deployment (stream prefix) has a KV bucket of its own unless one is named") {
  // Hosts of two prefixes sharing one bucket saw each other's host keys and rescued each other's tasks.
  CHECK(Names("TASKHOST", "").bucket() == "taskhost_tasks");
  CHECK(Names("PX1", "").bucket() == "px1_tasks");
  CHECK(Names("PY1", "").bucket() != Names("PX1", "").bucket());
  CHECK(Names("PX1", "shared").bucket() == "shared");
}

TEST_CASE("a WatchItem batch round-trips in order, and garbage is refused") {
  std::vector<v1::WatchItem> items(3);
  items[0].mutable_event()->set_task_id("t");
  items[0].mutable_event()->set_seq(1);
  items[0].mutable_event()->mutable_state()->set_state(v1::RUNNING);
  items[1].mutable_event()->set_seq(2);
  items[1].mutable_event()->mutable_progress()->set_current(3);
  items[2].mutable_completion()->set_task_id("t");
  items[2].mutable_completion()->set_state(v1::SUCCEEDED);
  const auto bytes = encode_items(items);
  auto back = decode_items(bytes);
  REQUIRE(back);
  REQUIRE(back->size() == 3);
  CHECK(back->at(0).event().state().state() == v1::RUNNING);
  CHECK(back->at(1).event().progress().current() == 3);
  CHECK(back->at(2).completion().state() == v1::SUCCEEDED);
  CHECK(decode_items("")->empty());
  CHECK_FALSE(decode_items(std::string("\x05\x01", 2)));  // claims 5 bytes, has 1
}

TEST_CASE("a task record round-trips every field and tolerates unknown ones") {
  TaskRecord r;
  r.task_id = "t1";
  r.kind = "interactive.count";
  r.owner = "w2";
  r.attempt = 3;
  r.state = v1::RUNNING;
  r.assignment = std::string("\0\1\2", 3);
  r.checkpoint = "cp";
  r.ack_on_completion = true;
  r.created_unix_ms = 1700000000000;
  r.updated_unix_ms = 1700000000500;
  r.control = ControlMark{4242, 4300, {4243, 4250}};
  r.rescued_from = "w1";
  std::string bytes = encode_record(r);
  bytes += std::string("\xF8\x07\x01", 3);  // field 127, varint 1: written by a newer host
  auto back = decode_record(bytes);
  REQUIRE(back);
  CHECK(back->task_id == "t1");
  CHECK(back->kind == "interactive.count");
  CHECK(back->owner == "w2");
  CHECK(back->attempt == 3);
  CHECK(back->state == v1::RUNNING);
  CHECK(back->assignment == r.assignment);
  CHECK(back->checkpoint == "cp");
  CHECK(back->ack_on_completion);
  CHECK(back->created_unix_ms == r.created_unix_ms);
  CHECK(back->updated_unix_ms == r.updated_unix_ms);
  CHECK(back->control == r.control);
  CHECK(back->rescued_from == "w1");
  CHECK_FALSE(decode_record(std::string("\x0a\x09short", 7)));
}

TEST_CASE("a control mark skips what the plugin took and nothing it had not") {
  const std::vector<uint64_t> none;
  SUBCASE("taken in order: one number") {
    const auto m = ControlMark::of(10, none);
    CHECK(m == ControlMark{10, 0, {}});
    CHECK(m.taken(10));
    CHECK_FALSE(m.taken(11));
  }
  SUBCASE("held messages below the newest taken are listed as not taken; the ones after them as taken") {
    const std::vector<uint64_t> held{3, 7, 12};  // 12 is past the newest taken: it needs no listing
    const auto m = ControlMark::of(10, held);
    CHECK(m == ControlMark{2, 10, {3, 7}});
    for (uint64_t seq : {1, 2, 4, 5, 6, 8, 9, 10}) CHECK_MESSAGE(m.taken(seq), seq);
    for (uint64_t seq : {3, 7, 11, 12}) CHECK_FALSE_MESSAGE(m.taken(seq), seq);
  }
  SUBCASE("past the most it lists, the rest counts as not taken") {
    std::vector<uint64_t> held;
    for (uint64_t seq = 1; seq <= ControlMark::kMaxHeld + 1; ++seq) held.push_back(seq * 2);  // 2, 4, ...
    const auto m = ControlMark::of(1000, held);
    CHECK(m.held.size() == ControlMark::kMaxHeld);
    CHECK(m.taken_through == held.back() - 1);
    for (uint64_t seq : held) CHECK_FALSE_MESSAGE(m.taken(seq), seq);
    CHECK(m.taken(held.back() - 1));
    CHECK_FALSE(m.taken(held.back() + 1));  // taken, but past what the mark can say: applied again
  }
  SUBCASE("a record's mark it would not have written reads as its plain 'through'") {
    for (const ControlMark& odd : {ControlMark{10, 20, {15, 12}}, ControlMark{10, 20, {5}}, ControlMark{10, 20, {25}},
                                   ControlMark{10, 20, {12, 12}}, ControlMark{10, 5, {7}}}) {
      TaskRecord r;
      r.task_id = "t";
      r.control = odd;
      const auto back = decode_record(encode_record(r));
      REQUIRE(back);
      CHECK(back->control == ControlMark{10, 0, {}});
    }
  }
  SUBCASE("held sequences written one per tag (unpacked) read the same") {
    TaskRecord r;
    r.task_id = "t";
    r.control = ControlMark{1, 9, {}};
    std::string bytes = encode_record(r);
    bytes += std::string("\x68\x03\x68\x05", 4);  // field 13, varint 3; field 13, varint 5
    const auto back = decode_record(bytes);
    REQUIRE(back);
    CHECK(back->control == ControlMark{1, 9, {3, 5}});
  }
}

TEST_CASE("ack reply subjects give the delivery count, stream sequence and store time") {
  auto a = parse_ack_reply("$JS.ACK.TH_TASKS.kind_x.3.17.9.1700000000123456789.0");
  REQUIRE(a);
  CHECK(a->delivered == 3);
  CHECK(a->stream_seq == 17);
  CHECK(a->stored_unix_ns == 1700000000123456789);
  auto b = parse_ack_reply("$JS.ACK.dom.acchash.TH_TASKS.kind_x.1.5.5.1700000000000000000.2.rand");
  REQUIRE(b);
  CHECK(b->delivered == 1);
  CHECK(b->stream_seq == 5);
  CHECK_FALSE(parse_ack_reply("_INBOX.abc.1"));
  CHECK_FALSE(parse_ack_reply("$JS.ACK.too.short"));
}
