// The bias and activation epilogue of convolutions and linear layers, and the per-channel
// sums of their bias gradients.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>

#include "activation_math.hpp"
#include "cuda/launch.cuh"
#include "cuda/conv_epilogue.hpp"

namespace halo::cuda::raw {

namespace {

template <ops::Activation A, class T, class I>
__global__ void bias_act_kernel(T* y, const float* bias, I n, I C, I inner, float slope) {
  HALO_GRID_LOOP_T(I, i, n) {
    float v = ld(y, i);
    if (bias) v += bias[(i / inner) % C];
    st(y, i, kernels::activation_value<A>(v, slope));
  }
}

// Channels-last with C a multiple of the vector width: 16-byte loads and stores, and one
// modulo per vector. The vector's channels are c0 .. c0 + W - 1 (W divides C).
template <ops::Activation A, class T>
__global__ void bias_act_vec_kernel(T* y, const float* __restrict__ bias, int32_t nvec, int32_t C, float slope) {
  constexpr int W = 16 / sizeof(T);
  uint4* yv = reinterpret_cast<uint4*>(y);
  HALO_GRID_LOOP_T(int32_t, v, nvec) {
    uint4 raw = yv[v];
    T* e = reinterpret_cast<T*>(&raw);
    const int32_t c0 = (v * W) % C;
#pragma unroll
    for (int j = 0; j < W; ++j) {
      float x = ld(e, j);
      if (bias) x += bias[c0 + j];
      st(e, j, kernels::activation_value<A>(x, slope));
    }
    yv[v] = raw;
  }
}

// Channels-last (rows, C) column sums: threadIdx.x walks the channels (a warp reads 32
// neighbouring values of a row), threadIdx.y and the grid's y walk the rows; each thread
// sums in a register, the block adds its 8 partial rows in shared memory and issues one
// global atomic per channel.
constexpr int kSumRows = 8;
template <class T>
__global__ void column_sums_kernel(const T* g, int64_t rows, int C, float* out) {
  __shared__ float part[kSumRows][33];
  const int c = int(blockIdx.x) * 32 + int(threadIdx.x);
  float acc = 0.f;
  if (c < C)
    for (int64_t r = int64_t(blockIdx.y) * kSumRows + threadIdx.y; r < rows; r += int64_t(gridDim.y) * kSumRows)
      acc += ld(g, r * C + c);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float s = 0.f;
    for (int k = 0; k < kSumRows; ++k) s += part[k][threadIdx.x];
    atomicAdd(&out[c], s);
  }
}

// Contiguous (N, C, inner): blocks along x split one (n, c) plane, the grid's y walks the
// planes; a block reduces its share and adds it with one atomic.
template <class T>
__global__ void plane_sums_kernel(const T* g, int64_t planes, int64_t C, int64_t inner, float* out) {
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const T* base = g + p * inner;
    float acc = 0.f;
    for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < inner; i += int64_t(gridDim.x) * kThreads)
      acc += ld(base, i);
    acc = block_sum(acc);
    if (threadIdx.x == 0) atomicAdd(&out[p % C], acc);
  }
}

}  // namespace

namespace {
template <ops::Activation A>
void launch_bias_act(void* y, bool bf16, const float* bias, int64_t n, int64_t C, int64_t inner, float slope,
                     cudaStream_t s) {
  const size_t width = bf16 ? 8 : 4;
  const bool vec = inner == 1 && C % int64_t(width) == 0 && n % int64_t(width) == 0 && fits_int32(n) &&
                   reinterpret_cast<uintptr_t>(y) % 16 == 0;
  if (vec) {
    const int64_t nvec = n / int64_t(width);
    HALO_BF16_OR_F32(bf16, bias_act_vec_kernel<A><<<blocks_for(nvec), kThreads, 0, s>>>(
                               static_cast<T*>(y), bias, int32_t(nvec), int32_t(C), slope));
    return;
  }
  HALO_INDEX_TYPE(fits_int32(n), HALO_BF16_OR_F32(bf16, bias_act_kernel<A><<<blocks_for(n), kThreads, 0, s>>>(
                                                            static_cast<T*>(y), bias, I(n), I(C), I(inner), slope)));
}
}  // namespace

void bias_activation(void* y, bool bf16, const float* bias, int64_t n, int64_t C, int64_t inner, ops::Activation a,
                     float slope, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  kernels::with_activation(
      a, [&](auto kind) { launch_bias_act<decltype(kind)::value>(y, bf16, bias, n, C, inner, slope, s); });
  HALO_CUDA_CHECK_LAUNCH("bias_activation");
}

void channel_sums_add(const void* g, bool bf16, int64_t n, int64_t C, int64_t inner, float* out, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  // About 2048 blocks in all: enough to fill the GPU, few enough that the closing atomics
  // (one per channel and block) cost nothing next to the reads.
  if (inner == 1) {
    const int64_t rows = n / C;
    const unsigned gx = unsigned((C + 31) / 32);
    const unsigned gy = unsigned(std::max<int64_t>(1, std::min<int64_t>({(rows + kSumRows - 1) / kSumRows,
                                                                         std::max<int64_t>(1, 2048 / gx), 65535})));
    HALO_BF16_OR_F32(bf16, column_sums_kernel<<<dim3(gx, gy), dim3(32, kSumRows), 0, s>>>(
                               static_cast<const T*>(g), rows, int(C), out));
  } else {
    const int64_t planes = n / inner;
    const unsigned gy = unsigned(std::min<int64_t>(planes, 65535));
    const unsigned gx = unsigned(std::max<int64_t>(
        1, std::min<int64_t>((inner + kThreads * 8 - 1) / (kThreads * 8), std::max<int64_t>(1, 2048 / gy))));
    HALO_BF16_OR_F32(bf16, plane_sums_kernel<<<dim3(gx, gy), kThreads, 0, s>>>(static_cast<const T*>(g), planes, C,
                                                                               inner, out));
  }
  HALO_CUDA_CHECK_LAUNCH("channel_sums_add");
}

}  // namespace halo::cuda::raw
