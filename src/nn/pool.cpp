#include "halo/nn/pool.hpp"

namespace halo::nn {

ops::PoolConfig pool_config(ops::PoolKind kind, int dims, int64_t kernel, int64_t stride, int64_t padding,
                            bool count_include_pad) {
  ops::PoolConfig c;
  c.kind = kind;
  c.kernel.assign(size_t(dims), kernel);
  c.stride.assign(size_t(dims), stride == 0 ? kernel : stride);
  c.padding.assign(size_t(dims), padding);
  c.count_include_pad = count_include_pad;
  return c;
}

PoolNd::PoolNd(ops::PoolConfig cfg) : cfg_(std::move(cfg)) {
  // Validate the configuration now, so a bad layer fails where it is built.
  Shape probe = {1, 1};
  for (size_t d = 0; d < cfg_.kernel.size(); ++d) probe.push_back(cfg_.kernel[d]);
  ops::pool_output_shape(probe, cfg_, type());
}

std::string PoolNd::type() const {
  return std::string(ops::layer_prefix(cfg_.kind)) + "Pool" + std::to_string(cfg_.spatial_dims()) + "d";
}

Shape PoolNd::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  return ops::pool_output_shape(inputs[0], cfg_, describe());
}

Tensor PoolNd::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1, describe(), ": expected 1 input, got ", inputs.size());
  Tensor y = ops::pool_forward(inputs[0], cfg_, &plan_, describe());
  saved_input_ = training() ? inputs[0] : Tensor();
  return y;
}

std::vector<Tensor> PoolNd::backward(const Tensor& grad_output) {
  HALO_CHECK(saved_input_.defined(), describe(), ": backward without a forward in training mode");
  Tensor dx;
  if (input_needs_grad(0)) dx = ops::pool_backward(grad_output, saved_input_, cfg_, &plan_, describe());
  saved_input_ = Tensor();
  return {dx};
}

double PoolNd::forward_flops(const std::vector<Shape>& inputs) const {
  const Shape y = output_shape(inputs);
  double window = 1;
  for (int64_t k : cfg_.kernel) window *= double(k);
  return double(numel(y) / std::max<int64_t>(1, y[0])) * window;
}

void PoolNd::set_training(bool t) {
  Layer::set_training(t);
  if (!t) saved_input_ = Tensor();
}

Shape GlobalAvgPool::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  const Shape& x = inputs[0];
  HALO_CHECK_SHAPE(x.size() >= 3, describe(), ": input ", to_string(x), " should be (N, C, spatial...)");
  Shape y = {x[0], x[1]};
  if (keep_dims_) y.resize(x.size(), 1);
  return y;
}

Tensor GlobalAvgPool::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1, describe(), ": expected 1 input, got ", inputs.size());
  input_shape_ = inputs[0].shape();
  input_format_ = inputs[0].memory_format();
  return ops::global_avg_pool_forward(inputs[0], keep_dims_, describe());
}

std::vector<Tensor> GlobalAvgPool::backward(const Tensor& grad_output) {
  HALO_CHECK(!input_shape_.empty(), describe(), ": backward without a forward");
  if (!input_needs_grad(0)) return {Tensor()};
  return {ops::global_avg_pool_backward(grad_output, input_shape_, input_format_, describe())};
}

double GlobalAvgPool::forward_flops(const std::vector<Shape>& inputs) const {
  output_shape(inputs);
  return double(numel(inputs[0]) / std::max<int64_t>(1, inputs[0][0]));
}

}  // namespace halo::nn
