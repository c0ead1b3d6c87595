// Global average pooling (pool_dropout.hpp). The forward is one reduction per (n, c):
// contiguous inputs give each (n, c) its own block over an adjacent run of S values;
// channels-last inputs give a block 32 adjacent channels of one sample, so every warp reads
// 32 consecutive values, and 8 rows of threads split the S points between them.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/launch.cuh"
#include "cuda/pool.hpp"

namespace halo::cuda::raw {

namespace {

constexpr int kRowThreads = 256;
constexpr int kLanes = 32, kRows = 8;

// One block per (n, c) row of S adjacent values (blockIdx.x + gridDim.x * blockIdx.y).
template <class T>
__global__ void row_mean_kernel(const T* x, T* y, int64_t rows, int64_t S) {
  const int64_t r = int64_t(blockIdx.y) * gridDim.x + blockIdx.x;
  if (r >= rows) return;
  const T* p = x + r * S;
  double s = 0;
  for (int64_t i = threadIdx.x; i < S; i += kRowThreads) s += double(ld(p, i));
  __shared__ double part[kRowThreads];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = kRowThreads / 2; w > 0; w /= 2) {
    if (int(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) st(y, r, float(part[0] / double(S)));
}

// Block (kLanes, kRows) over channels [blockIdx.x * 32, +32) of sample blockIdx.y.
template <class T>
__global__ void column_mean_kernel(const T* x, T* y, int64_t C, int64_t S) {
  const int64_t n = blockIdx.y, c = int64_t(blockIdx.x) * kLanes + threadIdx.x;
  double s = 0;
  if (c < C) {
    const T* p = x + n * S * C + c;
    for (int64_t i = threadIdx.y; i < S; i += kRows) s += double(ld(p, i * C));
  }
  __shared__ double part[kRows][kLanes];
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int r = 1; r < kRows; ++r) s += part[r][threadIdx.x];
    st(y, n * C + c, float(s / double(S)));
  }
}

template <class T>
__global__ void broadcast_mean_grad_kernel(const T* dy, T* dx, int64_t n, int64_t C, int64_t S, bool cl, float inv) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t nc = cl ? (i / (S * C)) * C + i % C : i / S;
    st(dx, i, ld(dy, nc) * inv);
  }
}

}  // namespace

void global_avg_pool_forward(const void* x, void* y, bool bf16, const GlobalPoolDesc& d, void* stream) {
  const int64_t rows = d.N * d.C;
  if (rows == 0) return;
  auto s = as_stream(stream);
  if (d.channels_last) {
    HALO_CHECK(d.N <= 65535, "global_avg_pool: a batch of ", d.N, " samples exceeds the GPU kernel's 65535");
    const dim3 grid(unsigned((d.C + kLanes - 1) / kLanes), unsigned(d.N));
    HALO_BF16_OR_F32(bf16, column_mean_kernel<<<grid, dim3(kLanes, kRows), 0, s>>>(static_cast<const T*>(x),
                                                                                    static_cast<T*>(y), d.C, d.S));
  } else {
    const int64_t gx = std::min<int64_t>(rows, 65535), gy = (rows + gx - 1) / gx;
    HALO_BF16_OR_F32(bf16, row_mean_kernel<<<dim3(unsigned(gx), unsigned(gy)), kRowThreads, 0, s>>>(
                               static_cast<const T*>(x), static_cast<T*>(y), rows, d.S));
  }
  HALO_CUDA_CHECK_LAUNCH("global_avg_pool_forward");
}

void global_avg_pool_backward(const void* dy, void* dx, bool bf16, const GlobalPoolDesc& d, void* stream) {
  const int64_t n = d.N * d.C * d.S;
  if (n == 0) return;
  const unsigned blocks = unsigned(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 8192)));
  HALO_BF16_OR_F32(bf16, broadcast_mean_grad_kernel<<<blocks, 256, 0, as_stream(stream)>>>(
                             static_cast<const T*>(dy), static_cast<T*>(dx), n, d.C, d.S, d.channels_last,
                             float(1.0 / double(d.S))));
  HALO_CUDA_CHECK_LAUNCH("global_avg_pool_backward");
}

}  // namespace halo::cuda::raw
