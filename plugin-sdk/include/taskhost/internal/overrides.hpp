// Which optional calls an executor class implements, decided at compile time from what it declares, so
// the SDK can leave the matching descriptor function NULL (the ABI's "not implemented") when it does not.
// Not part of the author's API.
#pragma once

#include <taskhost/sdk/task_executor.hpp>
#include <type_traits>

namespace taskhost::internal {

// `&E::name` has type "member of TaskExecutor" exactly when no class between E and TaskExecutor declares
// `name`. When the name is not visible from here (a private override, an overload set) the SDK assumes
// it is implemented: the descriptor then carries the function and the default still answers correctly.
#define TASKHOST_INTERNAL_DECLARES(name)                                                     \
  template <typename E>                                                                      \
  constexpr bool declares_##name() {                                                         \
    if constexpr (requires { &E::name; }) {                                                  \
      return !std::is_same_v<decltype(&E::name), decltype(&::taskhost::TaskExecutor::name)>; \
    } else {                                                                                 \
      return true;                                                                           \
    }                                                                                        \
  }

TASKHOST_INTERNAL_DECLARES(deliver)
TASKHOST_INTERNAL_DECLARES(reconcile)
TASKHOST_INTERNAL_DECLARES(can_reattach)
TASKHOST_INTERNAL_DECLARES(detach)

#undef TASKHOST_INTERNAL_DECLARES

}  // namespace taskhost::internal
