// Calls into one kind executor, by operation, for /metrics: exact, and cheap on the call path.
//
// Why not one atomic per operation: an atomic add is a locked instruction, about 2 ns on the development
// machine, which was as much as the rest of a call through the C-ABI shim (bench_abi_call: 1.5-2.4x a
// direct virtual call with it, 1.05-1.44x without). Instead each of the first kOwnedShards threads that
// call plugins owns a shard of counters and adds with a plain load and store (exact: it is the shard's
// only writer); threads after those share one more shard with locked adds. A read sums the shards.
//
// Thread rule: add() from any thread; read() from any thread (each count is exact; the set is not one
// instant).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace taskhost::plugin {

enum class CallOp : uint8_t { start, deliver, cancel, reconcile, can_reattach, detach, release, kCount };

class CallCounters {
 public:
  void add(CallOp op) noexcept {
    const size_t t = thread_slot();
    std::atomic<uint64_t>& c = shards_[t].n[static_cast<size_t>(op)];
    if (t < kOwnedShards) {
      c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    } else {
      c.fetch_add(1, std::memory_order_relaxed);
    }
  }
  uint64_t read(CallOp op) const noexcept {
    uint64_t sum = 0;
    for (const Shard& s : shards_) sum += s.n[static_cast<size_t>(op)].load(std::memory_order_relaxed);
    return sum;
  }

 private:
  static constexpr size_t kOwnedShards = 16;
  static constexpr size_t kOps = static_cast<size_t>(CallOp::kCount);
  struct alignas(64) Shard {  // a cache line each: owners never write the same line
    std::array<std::atomic<uint64_t>, kOps> n{};
  };
  // This thread's shard: its own (the first kOwnedShards threads to ask, process-wide), or the shared one.
  static size_t thread_slot() noexcept {
    // initial-exec: this library is linked into executables only, and the default model for position-
    // independent code (a __tls_get_addr call per access) cost more than the locked add it replaces.
    [[gnu::tls_model("initial-exec")]] static thread_local size_t slot = kUnassigned;
    if (slot == kUnassigned) [[unlikely]] slot = assign_slot();
    return slot;
  }
  static size_t assign_slot() noexcept {
    static std::atomic<size_t> next{0};
    const size_t n = next.fetch_add(1, std::memory_order_relaxed);
    return n < kOwnedShards ? n : kOwnedShards;
  }
  static constexpr size_t kUnassigned = ~size_t{0};

  std::array<Shard, kOwnedShards + 1> shards_{};
};

}  // namespace taskhost::plugin
