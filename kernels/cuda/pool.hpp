// Pooling kernels: windows (pool.cu) and global average pooling (global_pool.cu). As everywhere
// in kernels/cuda the launchers take plain device pointers and the stream as void* (so the op
// tables compile with the host compiler alone); element types are f32 or bf16 storage (the `bf16`
// flags) computed in f32, and sums accumulate in f64.
#pragma once
#include <cstdint>

#include "halo/ops/pool.hpp"

namespace halo::cuda::raw {

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


/// A dense (N, C, spatial...) tensor with S spatial points per (n, c): contiguous (the S
/// points of one channel are adjacent) or channels-last (the C channels of one point are).
struct GlobalPoolDesc {
  int64_t N = 0, C = 0, S = 1;
  bool channels_last = false;
};
/// y[n * C + c] = mean over the S points of x[n, c, :]; each output written once (no atomics),
/// summed in f64.
void global_avg_pool_forward(const void* x, void* y, bool bf16, const GlobalPoolDesc& d, void* stream);
/// dx[n, c, s] = dy[n * C + c] / S for every point, in dx's layout.
void global_avg_pool_backward(const void* dy, void* dx, bool bf16, const GlobalPoolDesc& d, void* stream);

}  // namespace halo::cuda::raw
