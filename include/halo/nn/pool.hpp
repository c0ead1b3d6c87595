// Pooling layers: MaxPool2d/3d, AvgPool2d/3d (kernel, stride, padding) and GlobalAvgPool.
// Each keeps a PoolPlan (backend primitives, rebuilt only when the input shape changes,
// and the max-pooling workspace between forward and backward).
#pragma once
#include <vector>

#include "halo/nn/layer.hpp"
#include "halo/ops/pool.hpp"

namespace halo::nn {

class PoolNd : public Layer {
 public:
  explicit PoolNd(ops::PoolConfig cfg);

  std::string type() const override;
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::pool};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  /// One comparison or addition per window element per output (plus a division for average).
  double forward_flops(const std::vector<Shape>& inputs) const override;
  void set_training(bool t) override;

  const ops::PoolConfig& config() const { return cfg_; }

 private:
  ops::PoolConfig cfg_;
  ops::PoolPlan plan_;
  Tensor saved_input_;  // training mode only
};

/// Builds the configuration of a cubic/square window; stride 0 means "same as the kernel".
ops::PoolConfig pool_config(ops::PoolKind kind, int dims, int64_t kernel, int64_t stride, int64_t padding,
                            bool count_include_pad = true);

class MaxPool2d : public PoolNd {
 public:
  explicit MaxPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : PoolNd(pool_config(ops::PoolKind::max, 2, kernel, stride, padding)) {}
};
class MaxPool3d : public PoolNd {
 public:
  explicit MaxPool3d(int64_t kernel, int64_t stride = 0, int64_t padding = 0)
      : PoolNd(pool_config(ops::PoolKind::max, 3, kernel, stride, padding)) {}
};
class AvgPool2d : public PoolNd {
 public:
  explicit AvgPool2d(int64_t kernel, int64_t stride = 0, int64_t padding = 0, bool count_include_pad = true)
      : PoolNd(pool_config(ops::PoolKind::avg, 2, kernel, stride, padding, count_include_pad)) {}
};
class AvgPool3d : public PoolNd {
 public:
  explicit AvgPool3d(int64_t kernel, int64_t stride = 0, int64_t padding = 0, bool count_include_pad = true)
      : PoolNd(pool_config(ops::PoolKind::avg, 3, kernel, stride, padding, count_include_pad)) {}
};

/// Mean over all spatial positions: (N, C, spatial...) -> (N, C, 1, ..., 1), or (N, C) with
/// keep_dims = false (ready for a Linear head).
class GlobalAvgPool : public Layer {
 public:
  explicit GlobalAvgPool(bool keep_dims = true) : keep_dims_(keep_dims) {}
  std::string type() const override { return "GlobalAvgPool"; }
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::pool};
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  using Layer::forward;
  Tensor forward(const std::vector<Tensor>& inputs) override;
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  double forward_flops(const std::vector<Shape>& inputs) const override;

 private:
  bool keep_dims_;
  Shape input_shape_;
  MemoryFormat input_format_ = MemoryFormat::contiguous;
};

}  // namespace halo::nn
