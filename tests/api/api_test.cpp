// The local API: request targets and bodies on their own, then the HTTP contract of a real host —
// status codes and {"error": ...} bodies that name the field or task, for malformed requests, unknown
// routes, wrong methods, unknown tasks and refused kinds.
#include "api/json.hpp"
#include "api/routes.hpp"
#include "cli_harness.hpp"

#include "api/http_client.hpp"
#include "config/endpoint.hpp"

#include <boost/json.hpp>

#include <doctest/doctest.h>

using namespace taskhost;
using namespace taskhost::clitest;

TEST_CASE("targets: segments and query are percent-decoded") {
  auto t = api::parse_target("/v1/tasks/a%20b%2Fc/wait?timeout_ms=5&x=y+z");
  CHECK(t.ok);
  REQUIRE(t.segments.size() == 4);
  CHECK(t.segments[2] == "a b/c");
  CHECK(t.query.at("timeout_ms") == "5");
  CHECK(t.query.at("x") == "y z");
  CHECK_FALSE(api::parse_target("/v1/tasks/%zz").ok);
  CHECK_FALSE(api::parse_target("/v1/tasks/abc%2").ok);
  CHECK(api::url_encode("a b/c") == "a%20b%2Fc");
}

TEST_CASE("routes: every endpoint, wrong methods and unknown paths") {
  using api::Endpoint;
  auto r = [](const char* m, const char* target) { return api::route(m, api::parse_target(target)); };
  CHECK(r("POST", "/v1/tasks").endpoint == Endpoint::submit);
  CHECK(r("GET", "/v1/tasks").endpoint == Endpoint::list);
  CHECK(r("GET", "/v1/tasks/t1").endpoint == Endpoint::status);
  CHECK(r("GET", "/v1/tasks/t1").task_id == "t1");
  CHECK(r("POST", "/v1/tasks/t1/messages").endpoint == Endpoint::message);
  CHECK(r("POST", "/v1/tasks/t1/cancel").endpoint == Endpoint::cancel);
  CHECK(r("GET", "/v1/tasks/t1/wait?timeout_ms=1").endpoint == Endpoint::wait);
  CHECK(r("GET", "/v1/watch?task=t1").endpoint == Endpoint::watch);
  CHECK(r("GET", "/v1/plugins").endpoint == Endpoint::plugins);
  CHECK(r("POST", "/v1/reload").endpoint == Endpoint::reload);
  CHECK(r("GET", "/metrics").endpoint == Endpoint::metrics);
  CHECK(r("GET", "/v1/health").endpoint == Endpoint::health);
  const auto bad = r("DELETE", "/v1/tasks");
  CHECK(bad.endpoint == Endpoint::method_not_allowed);
  CHECK(bad.allow == "GET, POST");
  CHECK(r("GET", "/v1/reload").endpoint == Endpoint::method_not_allowed);
  CHECK(r("GET", "/v2/tasks").endpoint == Endpoint::not_found);
  CHECK(r("GET", "/v1/tasks/t1/bogus").endpoint == Endpoint::not_found);
}

TEST_CASE("submit bodies: the simple form and TaskAssignment JSON; errors name the field") {
  v1::TaskAssignment a;
  REQUIRE_FALSE(api::parse_submit_body(R"({"kind":"hello.greet","input":{"name":"Ada"},"id":"t1"})", a));
  CHECK(a.task_id() == "t1");
  CHECK(a.execute().component_id() == "hello.greet");
  CHECK(a.execute().input().struct_value().fields().at("name").string_value() == "Ada");

  v1::TaskAssignment full;
  REQUIRE_FALSE(api::parse_submit_body(
      R"({"task_id":"t2","execute":{"component_id":"k","attempt":3},"heartbeat_interval_secs":7})", full));
  CHECK(full.execute().attempt() == 3);
  CHECK(full.heartbeat_interval_secs() == 7);

  v1::TaskAssignment x;
  CHECK(*api::parse_submit_body(R"({"kind":"k","inptu":{}})", x) ==
        "unknown field 'inptu' (expected kind, input, id, heartbeat_interval_secs)");
  CHECK(*api::parse_submit_body(R"({"kind":5})", x) == "field 'kind' must be a string");
  CHECK(api::parse_submit_body("{nope", x)->find("request body is not valid JSON") == 0);
  CHECK(api::parse_submit_body("[1]", x)->find("must be a JSON object") != std::string::npos);
  CHECK(api::parse_submit_body(R"({"task_idd":"x"})", x)->find("not a TaskAssignment") == 0);
}

TEST_CASE("message bodies: simple form, SteeringMessage, and a task id that must match the path") {
  v1::SteeringMessage m;
  REQUIRE_FALSE(api::parse_message_body(R"({"text":"hi","data":{"k":1},"reply_to":"confirm"})", "t1", m));
  CHECK(m.task_id() == "t1");
  CHECK(m.in_reply_to() == "confirm");
  REQUIRE(m.parts_size() == 2);
  CHECK(m.parts(0).text() == "hi");
  v1::SteeringMessage p;
  REQUIRE_FALSE(api::parse_message_body(R"({"parts":[{"text":"x"}],"in_reply_to":"r"})", "t1", p));
  CHECK(p.in_reply_to() == "r");
  v1::SteeringMessage bad;
  CHECK(*api::parse_message_body(R"({"parts":[{"text":"x"}],"task_id":"other"})", "t1", bad) ==
        "field 'task_id' ('other') does not match the task in the path ('t1')");
  v1::SteeringMessage empty;
  CHECK(*api::parse_message_body("{}", "t1", empty) == "a message needs 'text' or 'data'");
}

TEST_CASE("the HTTP contract of a real host") {
  TempDir dir;
  const fs::path plugins = make_plugins_dir(dir.path(), {built_plugin("hello-c.so")});
  Host host(plugins, dir.path() / "state");
  std::string why;
  api::HttpTaskClient client(*config::parse_endpoint(host.api(), &why));
  auto error_of = [](const api::HttpTaskClient::Response& r) {
    const auto v = parse_json(r.body);
    return str(v.as_object(), "error");
  };

  auto r = client.request("POST", "/v1/tasks", R"({"kind":"hello.greet","input":{"name":"H"},"id":"h1"})");
  CHECK(r.status == 201);
  CHECK(str(parse_json(r.body).as_object(), "task_id") == "h1");
  r = client.request("POST", "/v1/tasks", R"({"kind":"hello.greet","id":"h1"})");
  CHECK(r.status == 200);
  CHECK(parse_json(r.body).as_object().at("duplicate").as_bool());

  r = client.request("POST", "/v1/tasks", R"({"kind":"hello.greet","knd":1})");
  CHECK(r.status == 400);
  CHECK(error_of(r).find("unknown field 'knd'") != std::string::npos);
  r = client.request("POST", "/v1/tasks", R"({"kind":"hello.greet","id":"has space"})");
  CHECK(r.status == 400);
  CHECK(error_of(r).find("field 'task_id'") == 0);
  r = client.request("POST", "/v1/tasks", R"({"kind":"no.kind","id":"nk"})");
  CHECK(r.status == 422);
  CHECK(str(parse_json(r.body).as_object(), "code") == "COMPONENT_NOT_FOUND");
  CHECK(str(parse_json(r.body).as_object(), "task_id") == "nk");

  r = client.request("GET", "/v1/tasks/ghost");
  CHECK(r.status == 404);
  CHECK(error_of(r) == "unknown task 'ghost'");
  r = client.request("POST", "/v1/tasks/ghost/messages", R"({"text":"x"})");
  CHECK(r.status == 404);
  CHECK(str(parse_json(r.body).as_object(), "outcome") == "UNKNOWN_TASK");
  r = client.request("GET", "/v1/tasks/ghost/wait?timeout_ms=10");
  CHECK(r.status == 404);
  r = client.request("GET", "/v1/tasks/h1/wait?timeout_ms=soon");
  CHECK(r.status == 400);
  CHECK(error_of(r).find("timeout_ms") != std::string::npos);
  r = client.request("GET", "/v1/tasks/h1/wait?timeout_ms=5000");
  CHECK(r.status == 200);
  CHECK(str(parse_json(r.body).as_object(), "output") == "Hello, H!");
  r = client.request("POST", "/v1/tasks/h1/messages", R"({"text":"late"})");
  CHECK(r.status == 409);
  r = client.request("GET", "/v1/watch?task=ghost");
  CHECK(r.status == 404);

  r = client.request("DELETE", "/v1/tasks");
  CHECK(r.status == 405);
  r = client.request("GET", "/v1/nothing");
  CHECK(r.status == 404);
  r = client.request("GET", "/v1/health");
  CHECK(r.status == 200);
  CHECK(parse_json(r.body).as_object().at("accepting").as_bool());
}
