#include "halo/nn/conv.hpp"

#include <cmath>

#include "halo/nn/init.hpp"

namespace halo::nn {

ConvNd::ConvNd(int spatial_dims, bool transposed, int64_t in_channels, int64_t out_channels,
               std::vector<int64_t> kernel, const ConvOptions& o)
    : in_(in_channels), out_(out_channels), kernel_(std::move(kernel)), options_(o) {
  const std::string who = (spatial_dims == 2 ? (transposed ? "ConvTranspose2d" : "Conv2d")
                                             : (transposed ? "ConvTranspose3d" : "Conv3d"));
  conv_params_ = ops::ConvParams::uniform(spatial_dims, o.stride, o.padding, o.dilation, o.groups, transposed,
                                          o.output_padding);
  conv_params_.validate(who);
  HALO_CHECK_T(ConfigError, in_ >= 1 && out_ >= 1 && in_ % o.groups == 0 && out_ % o.groups == 0, who,
               ": in_channels ", in_, " and out_channels ", out_, " must be positive multiples of groups ", o.groups);
  for (auto k : kernel_) HALO_CHECK_T(ConfigError, k >= 1, who, ": kernel size must be >= 1, got ", k);
  HALO_CHECK_T(ConfigError, o.activation.activation != ops::Activation::leaky_relu || o.activation.slope > 0, who,
               ": fused leaky_relu needs a slope > 0, got ", o.activation.slope);
  add_parameter("weight", Tensor::zeros(ops::conv_weight_shape(in_, out_, kernel_, conv_params_)));
  if (o.bias) add_parameter("bias", Tensor::zeros({out_}), /*weight_decay=*/false);
}

ConvNd::ConvNd(int spatial_dims, bool transposed, int64_t in_channels, int64_t out_channels,
               std::vector<int64_t> kernel, const ConvOptions& o, std::vector<int64_t> padding)
    : ConvNd(spatial_dims, transposed, in_channels, out_channels, std::move(kernel), o) {
  HALO_CHECK_T(ConfigError, int(padding.size()) == spatial_dims, "ConvNd: ", padding.size(),
               " paddings for ", spatial_dims, " spatial dims");
  conv_params_.padding = std::move(padding);
  conv_params_.validate("ConvNd");
}

void ConvNd::check_input(const Shape& x) const {
  const size_t nd = size_t(conv_params_.spatial_dims);
  HALO_CHECK_SHAPE(x.size() == nd + 2, describe(), ": input ", to_string(x), " should be (N, C, ", nd,
                   " spatial dims) for weight ", to_string(weight_shape()));
  HALO_CHECK_SHAPE(x[1] == in_, describe(), ": input ", to_string(x), " has ", x[1], " channels, the layer expects ",
                   in_, " (weight ", to_string(weight_shape()), ")");
}

Shape ConvNd::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  check_input(inputs[0]);
  return ops::conv_output_shape(inputs[0], weight_shape(), conv_params_, describe());
}

Tensor ConvNd::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1, describe(), ": expected 1 input, got ", inputs.size());
  const Tensor& x = inputs[0];
  HALO_CHECK_SHAPE(x.defined(), describe(), ": input is undefined");
  check_input(x.shape());
  Parameter& w = params_.at(0);
  // Mixed precision: bf16 activations with f32 master weights (the op casts).
  const bool mixed = x.dtype() == DType::bf16 && w.value.dtype() == DType::f32;
  HALO_CHECK_SHAPE((x.dtype() == w.value.dtype() || mixed) && x.device() == w.value.device(), describe(), ": input ",
                   x.str(), " does not match the weight ", w.value.str(), " in dtype or device");
  if (!plan_.matches(x.shape(), x.dtype()) || plan_.device() != x.device()) plan_ = make_plan(x);
  Tensor y = ops::conv_forward(plan_, x, w.value, options_.bias ? params_.at(1).value : Tensor());
  save_for_backward(x, y);
  return y;
}

void ConvNd::save_for_backward(const Tensor& x, const Tensor& y) {
  if (!training()) return;
  saved_input_ = x;
  saved_output_ = options_.activation.activation != ops::Activation::none ? y : Tensor();
}

ops::ConvPlan ConvNd::make_plan(const Tensor& x) const {
  return ops::ConvPlan(x.shape(), weight_shape(), conv_params_, x.dtype(), x.device(), options_.activation,
                       options_.bias, options_.backend, describe());
}

void ConvNd::remember_forward(const Tensor& x, const Tensor& y) {
  if (!plan_.matches(x.shape(), x.dtype()) || plan_.device() != x.device()) plan_ = make_plan(x);
  HALO_CHECK_SHAPE(y.shape() == plan_.output_shape(), describe(), ": output ", y.str(), " does not match input ",
                   x.str());
  save_for_backward(x, y);
}

std::vector<Tensor> ConvNd::backward(const Tensor& grad_output) {
  HALO_CHECK_SHAPE(saved_input_.defined(), describe(), ": backward called without a forward in training mode");
  HALO_CHECK_SHAPE(grad_output.shape() == plan_.output_shape(), describe(), ": output gradient ",
                   to_string(grad_output.shape()), " does not match the output ", to_string(plan_.output_shape()),
                   " of input ", to_string(saved_input_.shape()));
  Parameter& w = params_.at(0);
  const Tensor gb = options_.bias ? params_.at(1).grad : Tensor();
  // The saved output is needed for the activation's derivative only: when nothing else
  // holds it (the model released it, the next layer's backward is done), the
  // pre-activation gradient is written over it instead of into one more output-sized
  // tensor, the largest of backward at the first layers.
  const bool output_expendable = saved_output_.defined() && saved_output_.storage().use_count() == 1;
  if (!input_needs_grad(0)) {
    // Only the weight gradient: the op may undo the activation inside that pass.
    ops::conv_backward_weights_through_activation(plan_, saved_input_, grad_output, saved_output_, w.grad, gb,
                                                  /*accumulate=*/true, output_expendable);
    saved_input_ = Tensor();
    saved_output_ = Tensor();
    return {Tensor()};
  }
  const Tensor g = saved_output_.defined()
                       ? ops::activation_backward(grad_output, saved_output_, options_.activation, output_expendable)
                       : grad_output;
  ops::conv_backward_weights(plan_, saved_input_, g, w.grad, gb, /*accumulate=*/true);
  Tensor gx = ops::conv_backward_data(plan_, g, w.value);
  saved_input_ = Tensor();
  saved_output_ = Tensor();
  return {gx};
}

double ConvNd::forward_flops(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  check_input(inputs[0]);
  Shape one = inputs[0];
  one[0] = 1;
  return ops::conv_flops(one, weight_shape(), conv_params_);
}

void ConvNd::init_parameters(uint64_t seed) {
  Parameter& w = params_.at(0);
  // fan_in as the weight is laid out: dim 1 times the kernel volume.
  double fan_in = double(w.value.size(1)), fan_out = double(w.value.size(0));
  for (auto k : kernel_) {
    fan_in *= double(k);
    fan_out *= double(k);
  }
  const auto& a = options_.activation;
  const double gain =
      a.activation == ops::Activation::leaky_relu ? std::sqrt(2.0 / (1.0 + a.slope * a.slope)) : std::sqrt(2.0);
  init::fill(w.value, init::Scheme::kaiming_uniform, fan_in, fan_out, seed, w.name, gain);
  if (options_.bias) params_.at(1).value.zero_();
}

void ConvNd::to(Device dev) {
  Layer::to(dev);
  plan_ = ops::ConvPlan();
}

}  // namespace halo::nn
