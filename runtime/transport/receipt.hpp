// The answer to a steering message or a cancel (DeliveryReceipt), built the same way by the router and by
// both transports' clients.
#pragma once

#include "taskhost/v1/steering.pb.h"

#include <string>
#include <string_view>

namespace taskhost::transport {

inline v1::DeliveryReceipt make_receipt(std::string_view task_id, std::string_view message_id,
                                        v1::DeliveryReceipt::Outcome outcome, std::string detail) {
  v1::DeliveryReceipt r;
  r.set_task_id(std::string(task_id));
  r.set_message_id(std::string(message_id));
  r.set_outcome(outcome);
  r.set_detail(std::move(detail));
  return r;
}

}  // namespace taskhost::transport
