// BatchNorm2d / BatchNorm3d: per-channel normalisation over (N, spatial...), with affine
// weight and bias (no weight decay) and running statistics kept as buffers
// ("running_mean", "running_var") for eval mode and checkpoints.
//
// set_stats_reducer() turns a layer into synchronised BatchNorm: the reducer sums the
// per-channel statistics across a group of ranks (see ops::StatsReducer).
//
// set_fused_relu(true) makes the layer BatchNorm followed by ReLU in one: the activation is
// applied in the normalising pass and its derivative inside the backward passes, which
// saves a read and a write of the tensor forward and three tensor passes backward compared
// with a separate ReLU layer (and the ReLU's saved output: this layer keeps its output
// instead). Parameter and buffer names are unchanged.
#pragma once
#include "halo/nn/layer.hpp"
#include "halo/ops/batchnorm.hpp"

namespace halo::nn {

class BatchNormNd : public Layer {
 public:
  /// `dtype` is the type of parameters and buffers, and so of the inputs (f64 for checks).
  BatchNormNd(int spatial_dims, int64_t channels, double eps = 1e-5, double momentum = 0.1,
              DType dtype = DType::f32);

  std::string type() const override {
    return "BatchNorm" + std::to_string(spatial_dims_) + "d" + (cfg_.relu ? "+ReLU" : "");
  }
  Shape output_shape(const std::vector<Shape>& inputs) const override;
  using Layer::forward;
  /// Training: batch statistics, running statistics updated. Eval: running statistics.
  Tensor forward(const std::vector<Tensor>& inputs) override;
  /// Works in both modes (eval mode: statistics are constants, as for frozen BatchNorm).
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  /// Per element: statistics (2), normalise and scale/shift (2).
  double forward_flops(const std::vector<Shape>& inputs) const override;
  /// weight = 1, bias = 0; running statistics reset to mean 0, variance 1.
  void init_parameters(uint64_t seed) override;
  std::optional<std::vector<ops::OpFamily>> op_families() const override {
    return std::vector<ops::OpFamily>{ops::OpFamily::batchnorm};
  }

  /// Synchronised BatchNorm: statistics summed across ranks by `reducer` (empty: local only).
  void set_stats_reducer(ops::StatsReducer reducer) { reducer_ = std::move(reducer); }
  const ops::BatchNormConfig& config() const { return cfg_; }
  void set_fused_relu(bool on) { cfg_.relu = on; }
  bool fused_relu() const { return cfg_.relu; }
  int64_t channels() const { return channels_; }
  Parameter& weight() { return params_.at(0); }
  Parameter& bias() { return params_.at(1); }
  Tensor& running_mean() { return buffers_.at(0).value; }
  Tensor& running_var() { return buffers_.at(1).value; }

 private:
  int spatial_dims_;
  int64_t channels_;
  ops::BatchNormConfig cfg_;
  ops::StatsReducer reducer_;
  Tensor saved_input_, saved_output_;
  bool mixed_ = false;  ///< the last forward took bf16 activations under f32 parameters
  ops::BatchNormSaved saved_;
};

class BatchNorm2d : public BatchNormNd {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1, DType dtype = DType::f32)
      : BatchNormNd(2, channels, eps, momentum, dtype) {}
};
class BatchNorm3d : public BatchNormNd {
 public:
  explicit BatchNorm3d(int64_t channels, double eps = 1e-5, double momentum = 0.1, DType dtype = DType::f32)
      : BatchNormNd(3, channels, eps, momentum, dtype) {}
};

}  // namespace halo::nn
