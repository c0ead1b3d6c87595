// Dynamic loss scaling for fp16 training. fp16 gradients underflow below 6e-8 and overflow
// above 65504; multiplying the loss gradient by a large S moves the small gradients into
// range, and dividing the parameter gradients by S before the update undoes it:
//
//   DynamicLossScaler scaler(model.parameters());
//   model.forward(x); loss.forward(y, t);
//   model.backward(scaler.scale_loss_grad(loss.backward()));   // dL/dy * S
//   if (sync.wait()) scaler.step(optimizer);   // unscale, skip on inf/NaN, adapt S
//
// When any gradient is inf or NaN the step is skipped (parameters and optimizer state stay
// unchanged) and S is multiplied by backoff_factor; after growth_interval clean steps in a
// row S is multiplied by growth_factor. With data parallelism, call step() after the
// gradient allreduce: an inf on any rank reaches every rank through the sum, so all ranks
// skip the same steps and keep the same S.
#pragma once
#include <cstdint>
#include <vector>

#include "halo/nn/parameter.hpp"
#include "halo/optim/optimizer.hpp"

namespace halo::optim {

struct LossScalerOptions {
  double init_scale = 65536.0;    ///< 2^16: keeps fp16 gradients of a freshly initialised network in range
  double growth_factor = 2.0;     ///< S *= this after growth_interval clean steps
  double backoff_factor = 0.5;    ///< S *= this on a step with inf/NaN gradients
  int growth_interval = 2000;     ///< clean steps in a row before S grows
  double min_scale = 1.0;         ///< S never goes below (a persistent overflow is not hidden by S -> 0)
  double max_scale = 16777216.0;  ///< 2^24: S never grows above
};

/// True when every element of every defined gradient is finite. CPU tensors are scanned
/// directly; tensors on a GPU are reduced there and only a scalar comes back.
bool grads_finite(const std::vector<nn::Parameter*>& params);

class DynamicLossScaler {
 public:
  explicit DynamicLossScaler(std::vector<nn::Parameter*> params, LossScalerOptions options = {});

  /// The current scale S.
  double scale() const { return scale_; }
  /// dloss * S, a new tensor (same dtype and device as dloss).
  Tensor scale_loss_grad(const Tensor& dloss) const;

  /// Checks the gradients (scaled by S) for inf/NaN. When finite, divides them by S in place
  /// and returns true; otherwise leaves them and returns false. Does not change S.
  bool unscale();
  /// Moves S after a step: backoff on overflow, growth after growth_interval clean steps.
  void update(bool overflow);
  /// unscale(); when finite optimizer.step(); update(). Returns whether the step was taken.
  /// A skipped step leaves the gradients scaled: zero them before the next backward as usual.
  bool step(Optimizer& optimizer);

  /// Steps skipped for inf/NaN so far, and clean steps since S last changed.
  int64_t skipped_steps() const { return skipped_; }
  int64_t clean_steps() const { return clean_; }
  const LossScalerOptions& options() const { return opt_; }

  /// For checkpoints: "loss_scaler/scale" (f64 scalar), "loss_scaler/clean_steps" and
  /// "loss_scaler/skipped_steps" (i64 scalars).
  StateDict state() const;
  /// Restores what state() exported; throws naming a missing entry.
  void load_state(const StateDict& state);

 private:
  std::vector<nn::Parameter*> params_;
  LossScalerOptions opt_;
  double scale_;
  int64_t clean_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace halo::optim
