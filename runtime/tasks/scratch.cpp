#include "tasks/scratch.hpp"

#include <memory>

namespace taskhost::tasks {
namespace {

// Big enough for a task's event or completion with a modest output; a larger one spills into blocks the
// arena mallocs and frees at reset, which is still one allocation per block, not one per field.
constexpr size_t kBlockSize = 16 * 1024;
// Outermost scopes between resets. A task's events and completion take well under 1 KiB each, so 16 of
// them stay inside the first block; a bigger one makes the arena allocate and triggers the reset.
constexpr int kScopesPerReset = 16;

struct ThreadScratch {
  std::unique_ptr<char[]> block{new char[kBlockSize]};  // declared first: outlives the arena using it
  google::protobuf::Arena arena{block.get(), kBlockSize};
  int depth = 0;
  int scopes_since_reset = 0;
};

// Function-local: only threads that publish (host workers, the timer, plugin threads calling the sink)
// pay for a block, on first use.
ThreadScratch& local() {
  thread_local ThreadScratch scratch;
  return scratch;
}

}  // namespace

ScratchScope::ScratchScope() {
  ThreadScratch& s = local();
  ++s.depth;
  arena_ = &s.arena;
}

ScratchScope::~ScratchScope() {
  ThreadScratch& s = local();
  if (--s.depth != 0) return;
  if (++s.scopes_since_reset >= kScopesPerReset || s.arena.SpaceAllocated() > kBlockSize) {
    s.arena.Reset();
    s.scopes_since_reset = 0;
  }
}

}  // namespace taskhost::tasks
