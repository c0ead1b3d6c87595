// Layers that reshape or combine tensors: Flatten, Concat (along channels), Add, Scale.
#pragma once
#include "halo/nn/layer.hpp"

namespace halo::nn {

/// (N, C, spatial...) -> (N, C * prod(spatial)) in logical channel-major order, whatever the
/// memory format: a channels-last input is made contiguous first, so the features a
/// following Linear sees do not depend on which convolution kernel produced them.
class Flatten final : public Layer {
 public:
  using Layer::forward;
  std::string type() const override { return "Flatten"; }
  /// A reshape of the tensor core: no op kernels.
  std::optional<std::vector<ops::OpFamily>> op_families() const override { return std::vector<ops::OpFamily>{}; }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;

 private:
  Shape input_shape_;
};

/// Concatenates any number of (N, C_i, spatial...) inputs along the channel dimension
/// (2-D or 3-D spatial, or none); inputs may come in any memory format.
class Concat final : public Layer {
 public:
  using Layer::forward;
  std::string type() const override { return "Concat"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::concat};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;

 private:
  std::vector<int64_t> channels_;
};

/// Sum of n inputs of the same shape (residual connections). The output takes the first
/// input's memory format. Each input receives its own gradient tensor, so a consumer may
/// accumulate into one in place without touching the others.
class Add final : public Layer {
 public:
  using Layer::forward;
  std::string type() const override { return "Add"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::elementwise};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  double forward_flops(const std::vector<Shape>& inputs) const override;

 private:
  size_t inputs_ = 0;
};

/// Multiplies by a constant factor (CosmoFlow scales its tanh output by 1.2).
class Scale final : public Layer {
 public:
  using Layer::forward;
  explicit Scale(double factor) : factor_(factor) {}
  std::string type() const override { return "Scale"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::elementwise};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  double forward_flops(const std::vector<Shape>& inputs) const override;
  double factor() const { return factor_; }

 private:
  double factor_;
};

}  // namespace halo::nn
