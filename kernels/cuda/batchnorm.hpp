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

}  // namespace halo::cuda::raw
