// MUST compile with -std=c++17, with g++/libstdc++ and with clang++/libc++: RunTable needs nothing newer
// (the rest of the SDK needs C++20). Instantiates every member, with the default stop member, another
// one, and none.
#include <memory>
#include <taskhost/sdk/run_table.hpp>

struct Run {
  void stop() {}
  void abandon() noexcept {}
  void join() {}
};

int main() {
  taskhost::RunTable<Run> table;
  bool ok = table.insert(1, std::make_shared<Run>());
  ok = ok && table.find(1) != nullptr && table.take(1) != nullptr && !table.release(1) && table.empty();
  table.release_all();
  taskhost::RunTable<Run> abandoning{&Run::abandon};
  taskhost::RunTable<Run> joining{nullptr};
  return ok && abandoning.size() == 0 && joining.empty() ? 0 : 1;
}
