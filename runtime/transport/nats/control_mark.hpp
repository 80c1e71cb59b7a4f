// Which of a task's control messages (steering and cancels, by control-stream sequence) its plugin had
// taken when a checkpoint was taken. The owner records it with each checkpoint; a host that re-attaches
// the task resumes from that checkpoint and skips exactly those messages, so none is applied twice and
// none is lost.
//
// Most messages are taken in stream order, so one number says it: every sequence up to `through`. The
// exception is a message the router holds for later (an answer that came before its question): the
// messages after it are taken while it is not. Those are what `taken_through` and `held` record: every
// sequence up to `taken_through` was taken too, except the ones in `held`. A host that reads only
// `through` (older hosts: the record's field 11) skips less and applies the rest again: at least once,
// never lost.
//
// Thread rule: a value; no shared state.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace taskhost::transport::nats {

struct ControlMark {
  // A record carries at most this many held sequences; `taken_through` stops below the next one, so a
  // task that holds more (answers to questions it never asks) only replays more, and its record stays small.
  static constexpr size_t kMaxHeld = 64;

  uint64_t through = 0;        // every sequence up to this one was taken
  uint64_t taken_through = 0;  // 0, or above `through`: every sequence up to this one too, except `held`
  std::vector<uint64_t> held;  // ascending, each in (through, taken_through]: not taken

  // Whether the message at `seq` was taken (and so is reflected in the checkpoint).
  bool taken(uint64_t seq) const {
    if (seq <= through) return true;
    return seq <= taken_through && !std::binary_search(held.begin(), held.end(), seq);
  }
  // The newest sequence this mark says anything about.
  uint64_t newest() const { return std::max(through, taken_through); }

  // The mark for a plugin that took every sequence up to `taken_newest` except `held_seqs` (ascending;
  // ones above `taken_newest` do not matter: nothing past it is skipped anyway).
  template <typename Seqs>
  static ControlMark of(uint64_t taken_newest, const Seqs& held_seqs) {
    ControlMark m;
    m.through = taken_newest;
    for (uint64_t seq : held_seqs) {
      if (seq > taken_newest) break;
      if (m.held.size() == kMaxHeld) {
        m.taken_through = seq - 1;
        break;
      }
      if (m.held.empty()) {
        m.through = seq - 1;
        m.taken_through = taken_newest;
      }
      m.held.push_back(seq);
    }
    return m;
  }

  bool operator==(const ControlMark&) const = default;
};

}  // namespace taskhost::transport::nats
