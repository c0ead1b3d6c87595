// What plans keep for their backend: opaque to the public headers, owned by the kernels of
// the plan's device kind (each casts it back to its own type).
#pragma once
#include <memory>

#include "halo/ops/conv.hpp"
#include "halo/ops/pool.hpp"

namespace halo::ops {

struct PoolPlan::Impl {
  std::shared_ptr<void> backend_state;
};

namespace detail {

struct ConvPlanState {
  virtual ~ConvPlanState() = default;
};

/// What a conv backend may set on a plan: its choice of kernel and its state.
struct ConvPlanAccess {
  static std::shared_ptr<ConvPlanState>& state(ConvPlan& p) { return p.state_; }
  static void choose(ConvPlan& p, ConvBackend backend, std::string kernel) {
    p.backend_ = backend;
    p.kernel_ = std::move(kernel);
  }
};

/// The plan's state as the backend's own type (made by that backend's prepare).
template <class S>
S& conv_state(ConvPlan& p) {
  return static_cast<S&>(*ConvPlanAccess::state(p));
}

}  // namespace detail

}  // namespace halo::ops
