// Private declarations of the CPU BatchNorm kernels (called only from src/ops/batchnorm.cpp).
// The op composes them around the statistics reduction, so the kernels only ever see
// local data: per-channel sums out, per-channel affine coefficients in.
#pragma once
#include "halo/tensor/tensor.hpp"

namespace halo::kernels::cpu {

// ---- reference kernels: contiguous (N, C, spatial...) tensors, f32 and f64 ----

/// sum[c] = sum of x over (N, spatial); sumsq[c] = sum of x^2 (accumulated in double).
template <class T>
void bn_channel_sums_ref(const Tensor& x, double* sum, double* sumsq);
/// y = x * scale[c] + shift[c].
template <class T>
void bn_affine_ref(const Tensor& x, const double* scale, const double* shift, Tensor& y);
/// sum_dy[c] = sum dy; sum_dy_xmu[c] = sum dy * (x - mean[c]).
template <class T>
void bn_grad_sums_ref(const Tensor& dy, const Tensor& x, const double* mean, double* sum_dy, double* sum_dy_xmu);
/// dx = k[c] * dy + p[c] * x + q[c].
template <class T>
void bn_grad_input_ref(const Tensor& dy, const Tensor& x, const double* k, const double* p, const double* q, Tensor& dx);

// ---- fast f32 kernels on channels-last tensors (rows of C), OpenMP ----

void bn_channel_sums_cl(const Tensor& x, double* sum, double* sumsq);
// `relu`: y = max(affine, 0). `relu_y` (the fused layer's output, same layout, or null):
// dy counts only where relu_y > 0.
void bn_affine_cl(const Tensor& x, const double* scale, const double* shift, Tensor& y, bool relu = false);
void bn_grad_sums_cl(const Tensor& dy, const Tensor& x, const double* mean, double* sum_dy, double* sum_dy_xmu,
                     const float* relu_y = nullptr);
void bn_grad_input_cl(const Tensor& dy, const Tensor& x, const double* k, const double* p, const double* q, Tensor& dx,
                      const float* relu_y = nullptr);

}  // namespace halo::kernels::cpu
