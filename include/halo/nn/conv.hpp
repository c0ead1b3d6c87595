// Convolution layers: Conv2d, Conv3d, ConvTranspose2d, ConvTranspose3d.
//
// Each owns its weight (and optional bias), keeps a ConvPlan that is rebuilt only when the
// input shape or dtype changes, and may fuse bias + activation into the forward pass.
// With a fused activation the layer keeps its output instead of a pre-activation copy:
// relu and leaky_relu (slope > 0) preserve sign, so the output alone gives the derivative.
#pragma once
#include <vector>

#include "halo/nn/layer.hpp"
#include "halo/ops/conv.hpp"

namespace halo::nn {

struct ConvOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  int64_t groups = 1;          ///< groups == in_channels == out_channels: depthwise
  int64_t output_padding = 0;  ///< transposed layers only
  bool bias = true;
  ops::ConvEpilogue activation;  ///< fused after the bias
  /// Forces a kernel (tests); automatic picks the fastest for the dtype and shape.
  ops::ConvBackend backend = ops::ConvBackend::automatic;
};

class ConvNd : public Layer {
 public:
  ConvNd(int spatial_dims, bool transposed, int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel,
         const ConvOptions& options);

  Shape output_shape(const std::vector<Shape>& inputs) const override;
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  double forward_flops(const std::vector<Shape>& inputs) const override;
  void init_parameters(uint64_t seed) override;
  void to(Device dev) override;
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::conv};
  }

  const ops::ConvParams& conv_params() const { return conv_params_; }
  const ops::ConvPlan& plan() const { return plan_; }
  const std::vector<int64_t>& kernel() const { return kernel_; }
  const ConvOptions& options() const { return options_; }
  Parameter& weight() { return params_.at(0); }
  bool has_bias() const { return options_.bias; }
  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }

 protected:
  /// The same with its own padding per spatial axis (spatially split layers pad the split
  /// axes themselves, with their neighbours' cells).
  ConvNd(int spatial_dims, bool transposed, int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel,
         const ConvOptions& options, std::vector<int64_t> padding);
  /// For layers that compute forward in pieces (a spatially split convolution overlapping
  /// its halo exchange): backward then sees input x and output y as if forward(x) had
  /// returned y.
  void remember_forward(const Tensor& x, const Tensor& y);
  /// A plan of this layer's convolution for input x (its params, epilogue and backend).
  ops::ConvPlan make_plan(const Tensor& x) const;

 private:
  void check_input(const Shape& x) const;
  void save_for_backward(const Tensor& x, const Tensor& y);
  const Shape& weight_shape() const { return params_.at(0).value.shape(); }

  int64_t in_, out_;
  std::vector<int64_t> kernel_;
  ConvOptions options_;
  ops::ConvParams conv_params_;
  ops::ConvPlan plan_;
  Tensor saved_input_, saved_output_;
};

class Conv2d : public ConvNd {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, const ConvOptions& o = {}) : ConvNd(2, false, in, out, {kernel, kernel}, o) {}
  std::string type() const override { return "Conv2d"; }
};
class Conv3d : public ConvNd {
 public:
  Conv3d(int64_t in, int64_t out, int64_t kernel, const ConvOptions& o = {})
      : ConvNd(3, false, in, out, {kernel, kernel, kernel}, o) {}
  std::string type() const override { return "Conv3d"; }
};
class ConvTranspose2d : public ConvNd {
 public:
  ConvTranspose2d(int64_t in, int64_t out, int64_t kernel, const ConvOptions& o = {})
      : ConvNd(2, true, in, out, {kernel, kernel}, o) {}
  std::string type() const override { return "ConvTranspose2d"; }
};
class ConvTranspose3d : public ConvNd {
 public:
  ConvTranspose3d(int64_t in, int64_t out, int64_t kernel, const ConvOptions& o = {})
      : ConvNd(3, true, in, out, {kernel, kernel, kernel}, o) {}
  std::string type() const override { return "ConvTranspose3d"; }
};

}  // namespace halo::nn
