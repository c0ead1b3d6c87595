// Convolution on cuDNN: a plan per shape, made once and executed many times.
//
// The plan holds the cuDNN descriptors. The algorithm of each direction (forward, backward
// data, backward filter) is chosen on its first use, by measurement (cudnnFind*Ex) or by
// cuDNN's heuristics (cudnnGet*_v7), and cached process-wide per shape, so layers of the
// same shape share one search. Workspace comes from the stream-ordered caching allocator
// at each call and goes back to it as soon as the call is queued.
#pragma once
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::cuda {

struct ConvParams {
  Shape input;   ///< (N, C, [D,] H, W)
  Shape weight;  ///< (K, C / groups, [kD,] kH, kW)
  std::vector<int> stride;    ///< per spatial dimension; empty means all 1
  std::vector<int> padding;   ///< per spatial dimension, both sides; empty means all 0
  std::vector<int> dilation;  ///< per spatial dimension; empty means all 1
  int groups = 1;
  /// f32, or bf16 storage with f32 accumulation.
  DType dtype = DType::f32;
  /// Layout of activations and weights: channels-last (NDHWC, weights K-kD-kH-kW-C) is the
  /// tensor cores' native layout and the fastest for bf16 and TF32.
  MemoryFormat format = MemoryFormat::channels_last;
  /// f32 only: let cuDNN use TF32 tensor cores (about 1e-3 relative error) instead of
  /// strict float32 arithmetic.
  bool allow_tf32 = false;
  /// Choose algorithms by timing them (true) or by cuDNN's heuristics (false).
  bool measure = true;
  /// Largest workspace an algorithm may use.
  size_t workspace_limit = size_t(1) << 30;
};

/// cuDNN's bf16 channels-last (tensor-core) kernels want input channels in 16-byte vectors:
/// the channel count a bf16 channels-last direct convolution of `channels` inputs runs with
/// (zero-padded to a multiple of 8, kernels/cuda/conv_ops.cpp), or 0 when it runs unpadded.
/// HALO_CUDNN_PAD_CHANNELS=0 turns padding off (to measure both).
inline int64_t padded_input_channels(int64_t channels, DType dtype, MemoryFormat format, bool transposed,
                                     int64_t groups) {
  constexpr int64_t kVector = 8;
  if (dtype != DType::bf16 || format != MemoryFormat::channels_last || transposed || groups != 1) return 0;
  if (channels % kVector == 0) return 0;
  const char* env = std::getenv("HALO_CUDNN_PAD_CHANNELS");
  if (env && std::strcmp(env, "0") == 0) return 0;
  return (channels + kVector - 1) / kVector * kVector;
}

class ConvPlan {
 public:
  /// Checks the parameters and builds the descriptors on GPU `device`; throws ShapeError
  /// naming the shapes when they do not fit.
  explicit ConvPlan(const ConvParams& params, int device = 0);
  ~ConvPlan();
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;

  const ConvParams& params() const;
  /// (N, K, [oD,] oH, oW)
  const Shape& output_shape() const;
  /// Multiply-adds times two of one forward pass (the same for each backward pass).
  double flops() const;

  /// y = alpha * conv(x, w) + beta * y
  void forward(const Tensor& x, const Tensor& w, Tensor& y, float alpha = 1.f, float beta = 0.f) const;
  /// dx = conv_transpose(dy, w) + beta * dx
  void backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, float beta = 0.f) const;
  /// dw = correlation of x and dy + beta * dw (beta = 1 accumulates over micro-batches)
  void backward_filter(const Tensor& x, const Tensor& dy, Tensor& dw, float beta = 0.f) const;

  /// The algorithms chosen so far, e.g. "fwd=IMPLICIT_PRECOMP_GEMM(0 B) bwd_data=? bwd_filter=?".
  std::string algorithms() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace halo::cuda
