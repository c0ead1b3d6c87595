#include "halo/nn/batchnorm.hpp"

#include "halo/ops/elementwise.hpp"

namespace halo::nn {

BatchNormNd::BatchNormNd(int spatial_dims, int64_t channels, double eps, double momentum, DType dtype)
    : spatial_dims_(spatial_dims), channels_(channels) {
  HALO_CHECK_SHAPE(spatial_dims == 2 || spatial_dims == 3, "BatchNorm: ", spatial_dims,
                   " spatial dimensions; 2 or 3 are supported");
  HALO_CHECK_SHAPE(channels >= 1, type(), ": channel count must be positive, got ", channels);
  HALO_CHECK_T(ConfigError, eps > 0 && momentum >= 0 && momentum <= 1, type(), ": eps must be positive and momentum in [0, 1] (got eps ",
               eps, ", momentum ", momentum, ")");
  HALO_CHECK_SHAPE(dtype == DType::f32 || dtype == DType::f64, type(), ": dtype ", halo::name(dtype), " (f32 or f64 expected)");
  cfg_.eps = eps;
  cfg_.momentum = momentum;
  add_parameter("weight", Tensor::full({channels}, 1.0, dtype), /*weight_decay=*/false);
  add_parameter("bias", Tensor::zeros({channels}, dtype), /*weight_decay=*/false);
  add_buffer("running_mean", Tensor::zeros({channels}, dtype));
  add_buffer("running_var", Tensor::full({channels}, 1.0, dtype));
}

Shape BatchNormNd::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  const Shape& x = inputs[0];
  HALO_CHECK_SHAPE(x.size() == size_t(spatial_dims_ + 2) && x[1] == channels_, describe(), ": input ", to_string(x),
                   " should be (N, ", channels_, spatial_dims_ == 2 ? ", H, W)" : ", D, H, W)");
  return x;
}

Tensor BatchNormNd::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1, describe(), ": expected 1 input, got ", inputs.size());
  const Tensor& in = inputs[0];
  output_shape({in.shape()});
  // Mixed precision: bf16 activations under f32 parameters are normalised in f32 (statistics,
  // scale and shift), converted at the layer's boundary; the output is bf16 again.
  mixed_ = in.dtype() == DType::bf16 && weight().value.dtype() == DType::f32;
  const Tensor x = mixed_ ? in.to(DType::f32) : in;
  HALO_CHECK_SHAPE(x.dtype() == weight().value.dtype(), describe(), ": input ", in.str(), " but parameters are ",
                   halo::name(weight().value.dtype()), " (build the layer with the input's dtype)");
  Tensor y = training()
                 ? ops::batchnorm_forward_train(x, weight().value, bias().value, running_mean(), running_var(), cfg_,
                                                &saved_, reducer_, describe())
                 : ops::batchnorm_forward_eval(x, weight().value, bias().value, running_mean(), running_var(), cfg_,
                                               &saved_, describe());
  saved_input_ = x;
  if (cfg_.relu) saved_output_ = y;
  return mixed_ ? y.to(DType::bf16) : y;
}

std::vector<Tensor> BatchNormNd::backward(const Tensor& grad_output) {
  HALO_CHECK(saved_input_.defined(), describe(), ": backward without a forward");
  const Tensor gy = mixed_ && grad_output.dtype() == DType::bf16 ? grad_output.to(DType::f32) : grad_output;
  ops::BatchNormGrads g = ops::batchnorm_backward(gy, saved_input_, weight().value, saved_,
                                                  input_needs_grad(0), reducer_, describe(), saved_output_);
  if (mixed_ && g.dx.defined()) g.dx = g.dx.to(DType::bf16);
  // On the parameters' device (a host loop here would read GPU memory).
  ops::axpy_(weight().grad, 1.0, g.dweight);
  ops::axpy_(bias().grad, 1.0, g.dbias);
  saved_input_ = Tensor();
  saved_output_ = Tensor();
  return {g.dx};
}

double BatchNormNd::forward_flops(const std::vector<Shape>& inputs) const {
  const Shape y = output_shape(inputs);
  return (cfg_.relu ? 5.0 : 4.0) * double(numel(y) / std::max<int64_t>(1, y[0]));
}

void BatchNormNd::init_parameters(uint64_t) {
  weight().value.fill_(1.0);
  bias().value.fill_(0.0);
  running_mean().fill_(0.0);
  running_var().fill_(1.0);
}

}  // namespace halo::nn
