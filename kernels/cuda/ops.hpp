// Launchers of the CUDA kernels behind the op dispatch (src/ops/*.cpp, src/optim/update_rules.cpp):
// layout/dtype copies, conv epilogues, per-channel sums, pooling, losses, reductions and the
// optimizer updates. They take plain device pointers and the stream (as void*), so the
// dispatch code compiles with the host compiler alone. Element types are f32 or bf16 storage
// (the `bf16` flags), computed in f32; reductions accumulate in f64.
#pragma once
#include <cstdint>

#include "halo/ops/activation.hpp"
#include "halo/ops/pool.hpp"

namespace halo::cuda::raw {

/// A strided walk over up to 8 dimensions (sizes and per-operand strides in elements).
struct StridedDesc {
  int nd = 0;
  int64_t shape[8] = {};
  int64_t dst_stride[8] = {};
  int64_t src_stride[8] = {};
};
/// dst[i] = src[i] (converting f32 <-> bf16), or dst[i] += src[i] when `accumulate`.
void strided_copy(void* dst, bool dst_bf16, const void* src, bool src_bf16, const StridedDesc& d, bool accumulate,
                  void* stream);

/// In place over a dense (N, C, ...) tensor: y = act(y + bias[c]); the channel of flat index
/// i is (i / inner) % C (inner = 1 for channels-last or (rows, C) matrices). bias may be null.
void bias_activation(void* y, bool bf16, const float* bias, int64_t n, int64_t C, int64_t inner,
                     ops::Activation a, float slope, void* stream);
/// out[c] += sum of g over every flat index of channel c (same channel rule as above).
void channel_sums_add(const void* g, bool bf16, int64_t n, int64_t C, int64_t inner, float* out, void* stream);

/// Pooling over (N, C, D, H, W) with explicit strides (2-D pooling uses D = 1).
struct PoolDesc {
  int64_t N = 0, C = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, p[3] = {0, 0, 0};
  int64_t xs[5] = {}, ys[5] = {};  ///< strides of N, C, D, H, W of input and output
  ops::PoolKind kind = ops::PoolKind::max;
  bool count_include_pad = true;
};
void pool_forward(const void* x, void* y, bool bf16, const PoolDesc& d, void* stream);
/// dx (input's strides) from dy (output's strides) and the forward input x; every dx element
/// is written (a gather over the windows that cover it, so no atomics and no zeroing).
void pool_backward(const void* dy, const void* x, void* dx, bool bf16, const PoolDesc& d, void* stream);

/// y = a * b element-wise.
void mul(const void* a, const void* b, void* y, int64_t n, bool bf16, void* stream);
/// y = alpha * x + beta * y.
void axpby(float alpha, const void* x, float beta, void* y, int64_t n, bool bf16, void* stream);
/// *out (device double, added to) += sum a[i] * b[i], or sum a[i] when b is null.
void dot(const void* a, const void* b, int64_t n, bool bf16, double* out, void* stream);

enum class DiffLoss { mse, l1 };
/// *out (device double, added to) += sum over i of (p - t)^2 or |p - t|.
void diff_loss(DiffLoss kind, const void* p, bool p_bf16, const void* t, bool t_bf16, int64_t n, double* out,
               void* stream);
/// g = scale * 2 (p - t) or scale * sign(p - t), in p's dtype.
void diff_loss_grad(DiffLoss kind, const void* p, bool p_bf16, const void* t, bool t_bf16, void* g, int64_t n,
                    float scale, void* stream);

/// f32 master weights; see halo/optim/update_rules.hpp for the formulas.
void sgd_update(float* w, const float* g, float* buf, int64_t n, float lr, float momentum, float wd, bool nesterov,
                void* stream);
void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                 float wd, bool decoupled, float bias1, float bias2, void* stream);

}  // namespace halo::cuda::raw
