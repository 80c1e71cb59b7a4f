// Per-thread scratch memory for the messages the router builds only to hand to the outbox by reference
// (events, completions). They live on a protobuf arena over a block the thread reuses, so publishing a
// message costs no malloc/free pair per string and submessage — on the hot path that was most of the
// router's allocations. The outbox must copy what it keeps (it gets `const&`, and TaskOutbox says so).
//
// Thread rule: a scope belongs to the thread that opened it. Scopes nest (an event emitted while a
// completion is being built). Nothing built in a scope may be used after it: the arena is reset after
// some outermost scopes close (every kScopesPerReset-th, or sooner once it spilled past its first
// block), not after each, because a reset costs about as much as building a small event.
#pragma once

#include <google/protobuf/arena.h>

namespace taskhost::tasks {

class ScratchScope {
 public:
  ScratchScope();
  ~ScratchScope();
  ScratchScope(const ScratchScope&) = delete;
  ScratchScope& operator=(const ScratchScope&) = delete;

  // A fresh message on this thread's arena, valid until the outermost scope closes.
  template <typename Message>
  Message* make() const {
    return google::protobuf::Arena::CreateMessage<Message>(arena_);
  }

 private:
  google::protobuf::Arena* arena_;
};

}  // namespace taskhost::tasks
