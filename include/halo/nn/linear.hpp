// Linear (fully connected) layer: y = x W^T + b on BLAS, x (N, in), W (out, in), b (out).
// Inputs of higher rank are refused rather than silently flattened: put a Flatten before
// (it flattens in logical channel-major order whatever the memory format).
#pragma once
#include "halo/nn/layer.hpp"

namespace halo::nn {

class Linear final : public Layer {
 public:
  using Layer::forward;
  Linear(int64_t in_features, int64_t out_features, bool bias = true, DType dtype = DType::f32);

  std::string type() const override { return "Linear"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::matmul};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  double forward_flops(const std::vector<Shape>& inputs) const override;
  /// Weight: Kaiming-uniform (gain sqrt(2), fan_in = in_features); bias: zero.
  void init_parameters(uint64_t seed) override;

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  Parameter& weight() { return params_[0]; }
  /// Throws if the layer was built without a bias.
  Parameter& bias();

 private:
  int64_t in_, out_;
  bool has_bias_;
  Tensor input_;  // kept in training mode for the weight gradient
};

}  // namespace halo::nn
