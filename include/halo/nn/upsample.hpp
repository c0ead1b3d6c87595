// Upsample: nearest (2D or 3D) or bilinear (2D) resizing by integer factors or to a size.
#pragma once
#include <vector>

#include "halo/nn/layer.hpp"
#include "halo/ops/upsample.hpp"

namespace halo::nn {

class Upsample : public Layer {
 public:
  explicit Upsample(ops::UpsampleConfig cfg);
  /// Same integer factor on every one of `dims` spatial dimensions.
  static Upsample by_scale(int dims, int64_t scale, ops::UpsampleMode mode = ops::UpsampleMode::nearest,
                           bool align_corners = false);
  /// To a fixed spatial size (one entry per spatial dimension).
  static Upsample to_size(std::vector<int64_t> size, ops::UpsampleMode mode = ops::UpsampleMode::nearest,
                          bool align_corners = false);

  std::string type() const override { return "Upsample"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::upsample};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  /// Nearest: none; bilinear: 3 multiply-adds per output.
  double forward_flops(const std::vector<Shape>& inputs) const override;
  const ops::UpsampleConfig& config() const { return cfg_; }

 private:
  ops::UpsampleConfig cfg_;
  Shape input_shape_;
  MemoryFormat input_format_ = MemoryFormat::contiguous;
};

}  // namespace halo::nn
