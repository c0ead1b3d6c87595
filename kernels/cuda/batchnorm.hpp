// BatchNorm kernels (batchnorm.cu): per-channel sums, the affine pass with the fused ReLU, and
// the backward passes. As everywhere in kernels/cuda the launchers take plain device pointers and
// the stream as void* (so the op tables compile with the host compiler alone); element types are
// f32 or bf16 storage (the `bf16` flags) computed in f32, and sums accumulate in f64.
#pragma once
#include <cstdint>

namespace halo::cuda::raw {

/// A dense (N, C, ...) tensor seen as n flat elements whose channel is (i / inner) % C:
/// inner = 1 for channels-last (and for (N, C) matrices), the spatial size when contiguous.
struct ChannelLayout {
  int64_t n = 0, C = 0, inner = 1;
};

/// out[c] += sum of x, out[C + c] += sum of x^2 over channel c (out: 2C device doubles).
void bn_stats(const void* x, bool bf16, const ChannelLayout& l, double* out, void* stream);
/// y = x * scale[c] + shift[c], then max(y, 0) when `relu` (scale, shift: C device floats).
void bn_affine(const void* x, void* y, bool bf16, const ChannelLayout& l, const float* scale, const float* shift,
               bool relu, void* stream);
/// With g' = dy, or dy where relu_y > 0 and 0 elsewhere when relu_y is not null:
/// out[c] += sum g', out[C + c] += sum g' * (x - mean[c]) (mean: C device doubles).
void bn_grad_sums(const void* dy, const void* x, const void* relu_y, bool bf16, const ChannelLayout& l,
                  const double* mean, double* out, void* stream);
/// dx = k[c] * g' + p[c] * x + q[c] (g' as above; k, p, q: C device floats).
void bn_grad_input(const void* dy, const void* x, const void* relu_y, void* dx, bool bf16, const ChannelLayout& l,
                   const float* k, const float* p, const float* q, void* stream);

// The O(C) algebra between those passes, on the device (no host round trip), in f64 as
// detail::batch_stats and detail::update_running form it on the host. w and b may be null
// (1 and 0); the f32 running statistics may be null (not kept).

/// From bn_stats' sums (sums: x (C), x^2 (C)) over `count` values per channel: mean and
/// invstd (C device doubles each), running_mean/var updated with the unbiased variance, and
/// the affine pass's scale = w * invstd, shift = b - mean * scale (C floats each).
void bn_train_coefficients(const double* sums, double count, int64_t C, double eps, double momentum, const float* w,
                           const float* b, float* running_mean, float* running_var, double* mean, double* invstd,
                           float* scale, float* shift, void* stream);
/// Eval mode: mean and invstd from the running statistics, then scale and shift as above.
void bn_eval_coefficients(const float* running_mean, const float* running_var, int64_t C, double eps, const float* w,
                          const float* b, double* mean, double* invstd, float* scale, float* shift, void* stream);
/// From bn_grad_sums' sums (g' (C), g' * (x - mean) (C)): dbias = sum g', dweight = sum g' *
/// xhat, and bn_grad_input's k = w * invstd, p = -k * invstd * mean(g' xhat), q = -k * mean(g')
/// - p * mean (p = q = 0 when the statistics were not the batch's).
void bn_backward_coefficients(const double* sums, const double* mean, const double* invstd, const float* w,
                              double count, bool batch_stats, int64_t C, float* dbias, float* dweight, float* k,
                              float* p, float* q, void* stream);

}  // namespace halo::cuda::raw
