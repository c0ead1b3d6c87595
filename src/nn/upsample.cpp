#include "halo/nn/upsample.hpp"

namespace halo::nn {

Upsample::Upsample(ops::UpsampleConfig cfg) : cfg_(std::move(cfg)) {
  const std::vector<int64_t>& v = cfg_.size.empty() ? cfg_.scale : cfg_.size;
  HALO_CHECK_SHAPE(v.size() == 2 || v.size() == 3, "Upsample ", cfg_.str(), ": give 2 or 3 scale factors or sizes");
  HALO_CHECK_SHAPE(cfg_.mode == ops::UpsampleMode::nearest || v.size() == 2, "Upsample ", cfg_.str(),
                   ": bilinear is 2D only");
}

Upsample Upsample::by_scale(int dims, int64_t scale, ops::UpsampleMode mode, bool align_corners) {
  ops::UpsampleConfig c;
  c.mode = mode;
  c.scale.assign(size_t(std::max(dims, 0)), scale);
  c.align_corners = align_corners;
  return Upsample(c);
}

Upsample Upsample::to_size(std::vector<int64_t> size, ops::UpsampleMode mode, bool align_corners) {
  ops::UpsampleConfig c;
  c.mode = mode;
  c.size = std::move(size);
  c.align_corners = align_corners;
  return Upsample(c);
}

Shape Upsample::output_shape(const std::vector<Shape>& inputs) const {
  expect_inputs(inputs, 1);
  return ops::upsample_output_shape(inputs[0], cfg_, describe());
}

Tensor Upsample::forward(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(inputs.size() == 1, describe(), ": expected 1 input, got ", inputs.size());
  input_shape_ = inputs[0].shape();
  input_format_ = inputs[0].memory_format();
  return ops::upsample_forward(inputs[0], cfg_, describe());
}

std::vector<Tensor> Upsample::backward(const Tensor& grad_output) {
  HALO_CHECK(!input_shape_.empty(), describe(), ": backward without a forward");
  if (!input_needs_grad(0)) return {Tensor()};
  return {ops::upsample_backward(grad_output, input_shape_, cfg_, input_format_, describe())};
}

double Upsample::forward_flops(const std::vector<Shape>& inputs) const {
  const Shape y = output_shape(inputs);
  if (cfg_.mode == ops::UpsampleMode::nearest) return 0.0;
  return 6.0 * double(numel(y) / std::max<int64_t>(1, y[0]));
}

}  // namespace halo::nn
