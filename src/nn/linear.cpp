#include "halo/nn/linear.hpp"

#include "halo/nn/init.hpp"
#include "halo/ops/matmul.hpp"

namespace halo::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, DType dtype)
    : in_(in_features), out_(out_features), has_bias_(bias) {
  HALO_CHECK_T(ConfigError, in_features > 0 && out_features > 0, "Linear: features must be positive, got in=",
               in_features, " out=", out_features);
  add_parameter("weight", Tensor::zeros({out_, in_}, dtype), /*weight_decay=*/true);
  if (has_bias_) add_parameter("bias", Tensor::zeros({out_}, dtype), /*weight_decay=*/false);
}

Parameter& Linear::bias() {
  HALO_CHECK(has_bias_, describe(), " was built without a bias");
  return params_[1];
}

Shape Linear::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  const Shape& s = inputs[0];
  HALO_CHECK_SHAPE(s.size() == 2 && s[1] == in_, describe(), ": input ", to_string(s), " does not fit (N, ", in_,
                   ")", (s.size() > 2 ? "; add a Flatten before this layer" : ""));
  return {s[0], out_};
}

Tensor Linear::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1, describe(), ": expected 1 input, got ", inputs.size());
  output_shape({inputs[0].shape()});
  const Tensor& w = params_[0].value;
  // Mixed precision: bf16 activations with f32 master weights (the op casts).
  const bool mixed = inputs[0].dtype() == DType::bf16 && w.dtype() == DType::f32;
  HALO_CHECK_SHAPE((inputs[0].dtype() == w.dtype() || mixed) && inputs[0].device() == w.device(), describe(),
                   ": input ", inputs[0].str(), " does not match weight ", w.str(), " in dtype or device");
  input_ = training() ? inputs[0] : Tensor();
  return ops::linear_forward(inputs[0], w, has_bias_ ? params_[1].value : Tensor());
}

std::vector<Tensor> Linear::backward(const Tensor& grad_output) {
  HALO_CHECK(input_.defined(), describe(), ": backward without a forward in training mode");
  HALO_CHECK_SHAPE(grad_output.shape() == Shape({input_.size(0), out_}), describe(), ": gradient ",
                   grad_output.str(), " does not match output [", input_.size(0), ",", out_, "]");
  Tensor no_bias;
  ops::linear_backward_params(input_, grad_output, params_[0].grad, has_bias_ ? params_[1].grad : no_bias);
  Tensor gx;
  if (input_needs_grad(0)) gx = ops::linear_backward_data(grad_output, params_[0].value);
  input_ = Tensor();
  return {gx};
}

double Linear::forward_flops(const std::vector<Shape>& inputs) const {
  (void)inputs;
  return 2.0 * double(in_) * double(out_);
}

void Linear::init_parameters(uint64_t seed) {
  init::fill(params_[0].value, init::Scheme::kaiming_uniform, double(in_), double(out_), seed, params_[0].name);
  if (has_bias_) params_[1].value.zero_();
}

}  // namespace halo::nn
