#include "api/handlers.hpp"

#include "api/json.hpp"
#include "common/log.hpp"
#include "host/host.hpp"
#include "transport/local/local_transport.hpp"

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <optional>

namespace taskhost::api {
namespace json = boost::json;
using transport::local::SubmitResult;

HttpResponse json_response(unsigned status, std::string body) {
  return HttpResponse{status, "application/json", std::move(body)};
}

HttpResponse error_response(unsigned status, std::string_view message, std::string_view code,
                            std::string_view task_id) {
  return json_response(status, error_body(message, code, task_id));
}

namespace {

HttpResponse receipt_response(const v1::DeliveryReceipt& r) {
  unsigned status = 200;
  switch (r.outcome()) {
    case v1::DeliveryReceipt::ACCEPTED: status = 200; break;
    case v1::DeliveryReceipt::UNKNOWN_TASK: status = 404; break;
    case v1::DeliveryReceipt::TASK_ENDED: status = 409; break;
    default: status = 422; break;
  }
  json::value body = to_json_value(r);
  if (status != 200) {
    body.as_object()["error"] = r.detail().empty() ? v1::DeliveryReceipt::Outcome_Name(r.outcome()) : r.detail();
  }
  return json_response(status, json::serialize(body));
}

HttpResponse submit(ApiContext& ctx, std::string_view body) {
  v1::TaskAssignment a;
  if (auto why = parse_submit_body(body, a)) return error_response(400, *why, "INVALID_INPUT");
  const SubmitResult r = ctx.transport.submit(std::move(a));
  json::object out;
  out["task_id"] = r.task_id;
  switch (r.result) {
    case SubmitResult::Result::accepted: return json_response(201, json::serialize(out));
    case SubmitResult::Result::duplicate:
      out["duplicate"] = true;
      return json_response(200, json::serialize(out));
    case SubmitResult::Result::invalid: return error_response(400, r.message, "INVALID_INPUT", r.task_id);
    case SubmitResult::Result::rejected:
      return error_response(422, r.message, v1::ErrorCode_Name(r.code), r.task_id);
    case SubmitResult::Result::unavailable:
      return error_response(503, r.message, v1::ErrorCode_Name(r.code), r.task_id);
  }
  return error_response(500, "unexpected submit result");
}

HttpResponse cancel(ApiContext& ctx, const std::string& task_id, std::string_view body) {
  v1::CancelRequest request;
  request.set_task_id(task_id);
  if (!body.empty()) {
    json::error_code ec;
    const json::value v = json::parse(body, ec);
    if (ec || !v.is_object()) return error_response(400, "cancel body must be a JSON object like {\"reason\": \"...\"}");
    for (const auto& [key, value] : v.as_object()) {
      if (key != "reason" || !value.is_string())
        return error_response(400, fmt::format("unknown or non-string field '{}' (expected reason)", std::string_view(key)));
      request.set_reason(std::string(value.as_string()));
    }
  }
  return receipt_response(ctx.transport.cancel(request));
}

// The query parameters an endpoint takes; any other is an error naming it, so a typo is not ignored.
std::optional<std::string> unknown_parameter(const Target& target, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : target.query) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (const auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return fmt::format("unknown query parameter '{}' (expected {})", key, list);
    }
  }
  return std::nullopt;
}

// GET /v1/tasks?limit=N&after=ID: a page of every task accepted, oldest first (LocalTransport::list_page).
HttpResponse list(ApiContext& ctx, const Target& target) {
  if (auto why = unknown_parameter(target, {"limit", "after"})) return error_response(400, *why);
  size_t limit = kDefaultListLimit;
  if (const auto it = target.query.find("limit"); it != target.query.end()) {
    const std::string& text = it->second;
    size_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < 1 || v > kMaxListLimit) {
      return error_response(400, fmt::format("query parameter 'limit' must be an integer from 1 to {}, not '{}'",
                                             kMaxListLimit, text));
    }
    limit = v;
  }
  const auto after_it = target.query.find("after");
  const std::string after = after_it == target.query.end() ? std::string() : after_it->second;
  if (after_it != target.query.end() && after.empty())
    return error_response(400, "query parameter 'after' must name a task id (the last one of the previous page)");
  auto page = ctx.transport.list_page(after, limit);
  if (!page) return error_response(400, fmt::format("query parameter 'after': unknown task '{}'", after), "", after);
  json::value body = to_json_value(page->tasks);
  auto& out = body.as_object();
  if (!out.contains("tasks")) out["tasks"] = json::array();
  // The cursor of the next page; absent on the last one.
  if (page->more) out["next_after"] = page->tasks.tasks(page->tasks.tasks_size() - 1).task_id();
  return json_response(200, json::serialize(body));
}

// POST /v1/reload[?migrate=true], or a body {"migrate": true}: Host::reload, the same as SIGHUP.
HttpResponse reload(ApiContext& ctx, const Target& target, std::string_view body) {
  if (auto why = unknown_parameter(target, {"migrate"})) return error_response(400, *why);
  bool migrate = false;
  if (const auto it = target.query.find("migrate"); it != target.query.end()) {
    const std::string& v = it->second;
    if (v == "true" || v == "1" || v.empty()) migrate = true;
    else if (v == "false" || v == "0") migrate = false;
    else return error_response(400, fmt::format("query parameter 'migrate' must be true or false, not '{}'", v));
  }
  if (!body.empty()) {
    json::error_code ec;
    const json::value v = json::parse(body, ec);
    if (ec || !v.is_object()) return error_response(400, "reload body must be a JSON object like {\"migrate\": true}");
    for (const auto& [key, value] : v.as_object()) {
      if (key != "migrate" || !value.is_bool())
        return error_response(400, fmt::format("unknown or non-boolean field '{}' (expected migrate)", std::string_view(key)));
      migrate = migrate || value.as_bool();
    }
  }
  const auto report = ctx.host.reload(migrate);
  log::info("api: reload{}: {} loaded, {} removed, {} failed", migrate ? " (migrate)" : "", report.loaded.size(),
            report.removed.size(), report.errors.size());
  for (const auto& e : report.errors) log::warn("plugins: {}", e);
  json::object out;
  json::array loaded, removed, errors;
  for (const auto& f : report.loaded) loaded.emplace_back(f.string());
  for (const auto& f : report.removed) removed.emplace_back(f.string());
  for (const auto& e : report.errors) errors.emplace_back(e);
  out["loaded"] = std::move(loaded);
  out["removed"] = std::move(removed);
  out["errors"] = std::move(errors);
  out["migrate"] = migrate;
  out["migrated"] = report.migrated;
  return json_response(200, json::serialize(out));
}

HttpResponse dispatch(ApiContext& ctx, const Route& route, const Target& target, std::string_view body) {
  switch (route.endpoint) {
    case Endpoint::health: {
      // "failing" while the state store's latest transaction failed: the host runs, but what it does
      // is not recorded (a restart would not know it). A 503, so that a probe or a monitor notices.
      const auto store = ctx.transport.store_health();
      json::object out;
      out["status"] = store.failing ? "failing" : "ok";
      out["accepting"] = ctx.transport.accepting();
      out["active"] = ctx.host.router().active_count();
      if (store.failed_writes > 0) {
        out["store_failed_writes"] = store.failed_writes;
        out["store_last_error"] = store.last_error;
      }
      return json_response(store.failing ? 503 : 200, json::serialize(out));
    }
    case Endpoint::submit: return submit(ctx, body);
    case Endpoint::list: return list(ctx, target);
    case Endpoint::status: {
      const auto s = ctx.transport.status(route.task_id);
      if (!s) return error_response(404, "unknown task '" + route.task_id + "'", "", route.task_id);
      return json_response(200, to_json(*s));
    }
    case Endpoint::message: {
      v1::SteeringMessage m;
      if (auto why = parse_message_body(body, route.task_id, m)) return error_response(400, *why, "", route.task_id);
      return receipt_response(ctx.transport.send(std::move(m)));
    }
    case Endpoint::cancel: return cancel(ctx, route.task_id, body);
    case Endpoint::plugins: return json_response(200, plugins_json(ctx.host));
    case Endpoint::reload: return reload(ctx, target, body);
    case Endpoint::metrics:
      return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(ctx.transport, ctx.host)};
    case Endpoint::method_not_allowed:
      return error_response(405, "method not allowed; use " + route.allow);
    case Endpoint::wait:
    case Endpoint::watch:
    case Endpoint::not_found: break;
  }
  return error_response(404, "no such endpoint");
}

}  // namespace

HttpResponse handle(ApiContext& ctx, const Route& route, const Target& target, std::string_view body) {
  if (!target.ok) return error_response(400, "malformed percent-encoding in the request target");
  try {
    return dispatch(ctx, route, target, body);
  } catch (const std::exception& e) {
    return error_response(500, e.what());
  }
}

}  // namespace taskhost::api
