// taskhost send ID TEXT [--data JSON] [--reply-to REQUEST_ID]   and   taskhost cancel ID [--reason TEXT]
#include "api/json.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "common/escape_controls.hpp"

#include <iostream>

namespace taskhost::cli {
namespace {

// Prints the receipt; any outcome but ACCEPTED is an error line and exit 1.
int report(const CommandLine& cl, const v1::DeliveryReceipt& r, std::string_view command, std::string_view done) {
  if (cl.json()) print_json(r);
  if (r.outcome() == v1::DeliveryReceipt::ACCEPTED) {
    // "delivered" only when it was; otherwise what the host said ("queued: ...", "delivery in progress").
    if (!cl.json()) {
      std::cout << (r.detail().empty() || r.detail() == done ? std::string(done)
                                                              : "accepted (" + escaped_controls(r.detail()) + ")")
                << "\n";
    }
    return kExitOk;
  }
  std::cerr << "taskhost " << command << ": "
            << (r.detail().empty() ? v1::DeliveryReceipt::Outcome_Name(r.outcome()) : escaped_controls(r.detail())) << " ("
            << v1::DeliveryReceipt::Outcome_Name(r.outcome()) << ")\n";
  return kExitError;
}

}  // namespace

int send_command(const Args& args) {
  CommandLine cl("send", "send ID TEXT [--data JSON|@FILE] [--reply-to REQUEST_ID]",
                 "Sends steering text (and optional data) to task ID, or answers its input request with\n"
                 "--reply-to. The message is recorded before delivery is tried; exit 0 when accepted.");
  cl.options().add_options()
      ("id", po::value<std::string>()->required(), "the task id (positional)")
      ("text", po::value<std::string>()->required(), "the message text (positional; may be \"\")")
      ("data,d", po::value<std::string>()->value_name("JSON"), "structured data: JSON text, @FILE or @-")
      ("reply-to,r", po::value<std::string>()->value_name("REQUEST_ID"), "answer the input request with this id")
      ("message-id", po::value<std::string>()->value_name("ID"), "the message id (default: a new UUID)");
  cl.client_options(true);
  cl.positional("id", 1);
  cl.positional("text", 1);
  if (!cl.parse(args)) return kExitOk;

  v1::SteeringMessage m;
  m.set_task_id(cl.get<std::string>("id"));
  if (cl.has("message-id")) m.set_message_id(cl.get<std::string>("message-id"));
  if (cl.has("reply-to")) m.set_in_reply_to(cl.get<std::string>("reply-to"));
  m.add_parts()->set_text(cl.get<std::string>("text"));
  if (cl.has("data")) {
    const std::string data = json_argument(cl.get<std::string>("data"), "--data");
    if (auto why = api::from_json(data, *m.add_parts()->mutable_data())) throw UsageError("--data: " + *why);
  }
  return report(cl, make_client(cl)->send(m), "send", "delivered");
}

int cancel_command(const Args& args) {
  CommandLine cl("cancel", "cancel ID [--reason TEXT]",
                 "Asks task ID to stop. Cancel is cooperative: the task may still end succeeded or failed;\n"
                 "the host ends it canceled after its cancel deadline.");
  cl.options().add_options()
      ("id", po::value<std::string>()->required(), "the task id (positional)")
      ("reason", po::value<std::string>()->value_name("TEXT"), "why (passed to the task)");
  cl.client_options(true);
  cl.positional("id", 1);
  if (!cl.parse(args)) return kExitOk;
  v1::CancelRequest r;
  r.set_task_id(cl.get<std::string>("id"));
  if (cl.has("reason")) r.set_reason(cl.get<std::string>("reason"));
  return report(cl, make_client(cl)->cancel(r), "cancel", "cancel requested");
}

}  // namespace taskhost::cli
