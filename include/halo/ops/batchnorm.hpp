// Batch normalisation over (N, spatial...) per channel, for (N, C, spatial...) inputs in
// any memory format (the output keeps it).
//
// Training mode normalises with the batch statistics and updates the running ones as
// PyTorch does: running = (1 - momentum) * running + momentum * batch, with the unbiased
// variance (count / (count - 1)) going into running_var. Eval mode uses the running ones.
//
// Synchronised BatchNorm: the per-channel sums go through an optional StatsReducer, which
// sum-allreduces them across a group of ranks, so the statistics (and the matching
// backward terms) are those of the whole group's batch. Without a reducer this is plain
// BatchNorm.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::ops {

/// Sums `values[0..n)` in place across the ranks of a group (an MPI_Allreduce with MPI_SUM).
/// Forward calls it once with n = 2C + 1: [sum_c (C values), sum of squares_c (C), count (1)].
/// Backward calls it once with n = 2C: [sum(dy)_c (C), sum(dy * xhat)_c (C)], in training
/// mode and only when dx is wanted (a property of the model, so the same on every rank).
/// Every rank of the group must call the layer in the same order, as with any collective.
using StatsReducer = std::function<void(double* values, size_t n)>;

struct BatchNormConfig {
  double eps = 1e-5;
  double momentum = 0.1;
  /// y = max(BN(x), 0): BatchNorm and a following ReLU in one pass over the data (forward),
  /// the ReLU's derivative taken inside the BatchNorm backward passes (give it the output).
  bool relu = false;
};

/// What forward keeps for backward: per-channel mean and 1/sqrt(var + eps) (f64, on the host, or on the GPU: device_mean, device_invstd),
/// the element count behind them (the group's count with a reducer) and whether they
/// were batch statistics (training) or the running ones (eval).
struct BatchNormSaved {
  std::vector<double> mean;
  std::vector<double> invstd;
  double count = 0;
  bool batch_stats = true;
  /// On a GPU without a StatsReducer: the statistics stay on the device (f64, C each) and
  /// `mean`/`invstd` stay empty (no host round trip in the step).
  Tensor device_mean, device_invstd;
};

/// Training forward: batch statistics (through `reducer` when set), updates running_mean and
/// running_var in place, fills `saved`. weight, bias, running_* are (C) tensors of x's dtype.
Tensor batchnorm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                               Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved = nullptr,
                               const StatsReducer& reducer = {}, const std::string& who = "batchnorm");

/// Eval forward with the running statistics; fills `saved` (for a backward in eval mode).
Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                              const Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved = nullptr,
                              const std::string& who = "batchnorm");

struct BatchNormGrads {
  Tensor dx;       ///< same shape and memory format as x; undefined unless asked for
  Tensor dweight;  ///< (C): this rank's sum(dy * xhat), to be averaged by the gradient sync
  Tensor dbias;    ///< (C): this rank's sum(dy)
};

/// Backward. With batch statistics dx includes the terms through mean and variance; the
/// reducer (the same group as forward) sums them across ranks. dweight/dbias stay local.
/// With `relu_output` (the output of a forward with `relu` set), dy is the gradient of the
/// ReLU's output and counts only where that output is positive.
BatchNormGrads batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const BatchNormSaved& saved,
                                  bool need_dx = true, const StatsReducer& reducer = {},
                                  const std::string& who = "batchnorm", const Tensor& relu_output = Tensor());

}  // namespace halo::ops
