#include "tasks/call_pool.hpp"

#include "common/log.hpp"
#include "tasks/task.hpp"

#include <boost/asio/post.hpp>

#include <exception>

namespace taskhost::tasks {

void Strand::post(const TaskPtr& self, Call call) {
  boost::asio::post(strand_, [self, call = std::move(call)] {
    // A host call that throws is a host bug; log it and keep the pool's thread serving other tasks.
    try {
      call(self);
    } catch (const std::exception& e) {
      log::error("task call failed with an exception: {}", e.what());
    } catch (...) {
      log::error("task call failed with an unknown exception");
    }
  });
}

}  // namespace taskhost::tasks
