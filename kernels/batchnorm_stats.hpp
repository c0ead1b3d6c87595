// The O(C) statistics algebra of BatchNorm, in double on the host, shared by every backend
// (they differ only in how they compute the per-channel sums and apply the result).
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "halo/ops/batchnorm.hpp"

namespace halo::ops::detail {

/// Batch statistics from the per-channel sums `stats` = [sum (C), sum of squares (C),
/// count (1)], the layout the reducer contract promises: summed across the group by
/// `reducer` (when set), then mean and 1/sqrt(var + eps); `var` gets the biased variance.
/// Shared by the CPU and GPU paths, which differ only in how they compute the sums.
inline BatchNormSaved batch_stats(std::vector<double>& stats, int64_t C, const BatchNormConfig& cfg,
                           const StatsReducer& reducer, const Tensor& x, const std::string& who,
                           std::vector<double>& var) {
  if (reducer) reducer(stats.data(), stats.size());
  const double M = stats[size_t(2 * C)];
  HALO_CHECK_SHAPE(M > 1, who, ": training needs more than one value per channel, got ", M, " for input ", x.str(),
                   " (use a larger batch, or eval mode)");
  BatchNormSaved s;
  s.count = M;
  s.batch_stats = true;
  s.mean.resize(size_t(C));
  s.invstd.resize(size_t(C));
  var.assign(size_t(C), 0.0);
  for (size_t c = 0; c < size_t(C); ++c) {
    s.mean[c] = stats[c] / M;
    // E[x^2] - E[x]^2 can round below zero for near-constant channels.
    var[c] = std::max(0.0, stats[size_t(C) + c] / M - s.mean[c] * s.mean[c]);
    s.invstd[c] = 1.0 / std::sqrt(var[c] + cfg.eps);
  }
  return s;
}

/// running = (1 - momentum) running + momentum batch, with the unbiased variance, on the host
/// (a GPU's values make a round trip; its path without a reducer updates them on the device,
/// bn_train_coefficients in kernels/cuda/batchnorm.cu).
inline void update_running(Tensor& running_mean, Tensor& running_var, const BatchNormSaved& s,
                    const std::vector<double>& var, const BatchNormConfig& cfg) {
  if (!running_mean.defined() || !running_var.defined()) return;
  std::vector<double> rm = running_mean.to_vector<double>(), rv = running_var.to_vector<double>();
  const double m = cfg.momentum, unbias = s.count / (s.count - 1);
  for (size_t c = 0; c < rm.size(); ++c) {
    rm[c] = (1 - m) * rm[c] + m * s.mean[c];
    rv[c] = (1 - m) * rv[c] + m * var[c] * unbias;
  }
  const int64_t C = int64_t(rm.size());
  running_mean.copy_(Tensor::from_vector(rm, {C}));
  running_var.copy_(Tensor::from_vector(rv, {C}));
}

}  // namespace halo::ops::detail
