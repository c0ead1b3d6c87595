// Launch helpers shared by the CUDA kernels: block and grid sizes, grid-stride loops, the
// choice of index width and of storage type, and the block-wide f64 sum of the reductions.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/check.hpp"
#include "cuda/device_access.cuh"

namespace halo::cuda::raw {

/// Threads per block of the one-dimensional launches.
constexpr int kThreads = 256;
/// Blocks for a grid-stride loop over n elements: enough to fill any current GPU several times
/// over (at most `cap`; the loop does the rest), at least one.
inline unsigned blocks_for(int64_t n, int64_t cap = 8192) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, cap)));
}

#define HALO_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Index arithmetic in I = int32_t wherever every flat index fits: 64-bit division and modulo
// are emulated in software (dozens of instructions each), enough to make the index math,
// not memory, the bottleneck of kernels over the 268 M-element activations of CosmoFlow-128.
#define HALO_GRID_LOOP_T(I, i, n) \
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < (n); i += I(gridDim.x) * I(blockDim.x))
inline bool fits_int32(int64_t n) { return n < (int64_t(1) << 31) - int64_t(kThreads) * 8192; }

// Calls the body with I = int32_t when `small`, else int64_t.
#define HALO_INDEX_TYPE(small, ...) \
  do {                              \
    if (small) {                    \
      using I = int32_t;            \
      __VA_ARGS__;                  \
    } else {                        \
      using I = int64_t;            \
      __VA_ARGS__;                  \
    }                               \
  } while (0)

// Calls f.template operator()<T>() with T = bf16_t or float.
#define HALO_BF16_OR_F32(flag, ...) \
  do {                              \
    if (flag) {                     \
      using T = bf16_t;             \
      __VA_ARGS__;                  \
    } else {                        \
      using T = float;              \
      __VA_ARGS__;                  \
    }                               \
  } while (0)

/// Sum of `v` over the block (kThreads threads), valid in thread 0. Every thread of the
/// block calls it; it may be called again in a loop (the first barrier keeps a previous
/// call's readers of warp_sums ahead of this call's writers).
template <class T>
__device__ __forceinline__ T block_sum(T v) {
  __shared__ T warp_sums[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : T(0);
  if (threadIdx.x < 32)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

/// block_sum of two values at once (one pass of barriers), valid in thread 0; the same rules.
__device__ __forceinline__ void block_sum2(double& a, double& b) {
  __shared__ double wa[kThreads / 32], wb[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    a += __shfl_down_sync(0xffffffffu, a, o);
    b += __shfl_down_sync(0xffffffffu, b, o);
  }
  __syncthreads();  // the previous call's values may still be read
  if ((threadIdx.x & 31) == 0) {
    wa[threadIdx.x / 32] = a;
    wb[threadIdx.x / 32] = b;
  }
  __syncthreads();
  a = threadIdx.x < kThreads / 32 ? wa[threadIdx.x] : 0.0;
  b = threadIdx.x < kThreads / 32 ? wb[threadIdx.x] : 0.0;
  if (threadIdx.x < 32)
    for (int o = 16; o > 0; o >>= 1) {
      a += __shfl_down_sync(0xffffffffu, a, o);
      b += __shfl_down_sync(0xffffffffu, b, o);
    }
}

}  // namespace halo::cuda::raw
