#include "halo/nn/dropout.hpp"

#include "halo/ops/elementwise.hpp"

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
  mask_ = ops::dropout_mask(inputs[0], p_, seed_, step_++);
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
