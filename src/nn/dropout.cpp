#include "halo/nn/dropout.hpp"

#include "halo/cuda/runtime.hpp"
#include "halo/ops/elementwise.hpp"
#include "halo/util/random.hpp"

namespace halo::nn {

Dropout::Dropout(double p, uint64_t seed) : p_(p), seed_(seed) {
  HALO_CHECK_T(ConfigError, p >= 0.0 && p < 1.0, "Dropout: probability must be in [0, 1), got ", p);
}

Shape Dropout::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  return inputs[0];
}

Tensor Dropout::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1, describe(), ": expected 1 input, got ", inputs.size());
  if (!training() || p_ == 0.0) {
    mask_ = Tensor();
    return inputs[0];
  }
  const Device dev = inputs[0].device();
  // Inside a CUDA graph capture the mask kernel is recorded, not run: it runs at every replay,
  // each time with the next step's key, which the graph asks this layer for before the replay
  // (the step advances there, so checkpoints keep counting replayed steps).
  const uint64_t* key_at_replay =
      dev.is_cuda() ? cuda::replay_value(dev.index, [this] { return CounterRng(seed_, step_++).key(); }) : nullptr;
  mask_ = ops::dropout_mask(inputs[0], p_, seed_, key_at_replay ? step_ : step_++, key_at_replay);
  return ops::mul(inputs[0], mask_);
}

std::vector<Tensor> Dropout::backward(const Tensor& grad_output) {
  Tensor g;
  if (!input_needs_grad(0)) return {g};
  if (!mask_.defined()) return {grad_output};  // identity (eval mode or p == 0)
  HALO_CHECK_SHAPE(grad_output.shape() == mask_.shape(), describe(), ": gradient ", grad_output.str(),
                   " does not match output ", mask_.str());
  return {ops::mul(mask_, grad_output)};
}

}  // namespace halo::nn
