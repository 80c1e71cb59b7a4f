// The one doctest main every suite links.
//
// TASKHOST_TEST_SHARD=K/N runs only the K-th of N equal runs of the suite's test cases (in doctest's
// file/line order), so that CTest can run one long suite as N tests side by side (taskhost_add_test's
// SHARDS): the NATS suites spend most of their time waiting on timers, not on a CPU.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>

namespace {

// Applies TASKHOST_TEST_SHARD to `context`; false (and a message) when it is set but not K/N with 1 <= K <= N.
bool apply_shard(doctest::Context& context) {
  const char* spec = std::getenv("TASKHOST_TEST_SHARD");
  if (spec == nullptr || *spec == '\0') return true;
  unsigned k = 0, n = 0;
  char extra = 0;
  if (std::sscanf(spec, "%u/%u%c", &k, &n, &extra) != 2 || k < 1 || k > n) {
    std::fprintf(stderr, "TASKHOST_TEST_SHARD='%s': expected K/N with 1 <= K <= N\n", spec);
    return false;
  }
  const auto count = static_cast<unsigned>(doctest::detail::getRegisteredTests().size());
  // doctest counts the test cases that pass its filters from 1; first/last bound the ones it runs.
  const unsigned first = (k - 1) * count / n + 1;
  const unsigned last = k * count / n;
  if (first > last) {  // more shards than test cases: this one runs none
    context.setOption("test-case", "taskhost: no test case has this name");
    return true;
  }
  // doctest's closing summary counts every test case its filters pass, run or not: this line says which ran.
  std::fprintf(stderr, "TASKHOST_TEST_SHARD=%u/%u: running test cases %u..%u of %u\n", k, n, first, last, count);
  context.setOption("first", static_cast<int>(first));
  context.setOption("last", static_cast<int>(last));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  doctest::Context context;
  if (!apply_shard(context)) return 2;
  context.applyCommandLine(argc, argv);
  return context.run();
}
