#include "halo/nn/activation.hpp"

namespace halo::nn {

Shape ElementwiseActivation::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  return inputs[0];
}

Tensor ElementwiseActivation::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1, describe(), ": expected 1 input, got ", inputs.size());
  Tensor y = ops::activation_forward(kind_, inputs[0], slope_);
  output_ = training() ? y : Tensor();
  return y;
}

std::vector<Tensor> ElementwiseActivation::backward(const Tensor& grad_output) {
  HALO_CHECK(output_.defined(), describe(), ": backward without a forward in training mode");
  HALO_CHECK_SHAPE(grad_output.shape() == output_.shape(), describe(), ": gradient ", grad_output.str(),
                   " does not match output ", output_.str());
  Tensor gx;
  if (input_needs_grad(0)) gx = ops::activation_backward(kind_, output_, grad_output, slope_);
  output_ = Tensor();
  return {gx};
}

double ElementwiseActivation::forward_flops(const std::vector<Shape>& inputs) const {
  // One operation per element of one sample (the batch dimension excluded).
  if (inputs.empty() || inputs[0].empty()) return 0.0;
  return double(numel(inputs[0])) / double(inputs[0][0]);
}

LeakyReLU::LeakyReLU(double slope) : ElementwiseActivation(ops::Activation::leaky_relu, slope), slope_(slope) {
  HALO_CHECK_T(ConfigError, slope >= 0.0, "LeakyReLU: slope must be >= 0, got ", slope);
}

}  // namespace halo::nn
