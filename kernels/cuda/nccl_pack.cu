#include <cuda_bf16.h>

#include "cuda/launch.cuh"
#include "cuda/nccl_pack.hpp"

namespace halo::cuda::nccl_pack {
namespace {

using raw::blocks_for;
using raw::kThreads;
// Grid-stride loops: a bounded grid covers buffers of any size.
constexpr int64_t kMaxBlocks = 65535;

__global__ void f32_to_bf16_kernel(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __bfloat16_as_ushort(__float2bfloat16_rn(src[i]));
}

__global__ void bf16_to_f32_scaled_kernel(const uint16_t* src, float* dst, int64_t n, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __bfloat162float(__ushort_as_bfloat16(src[i])) * scale;
}

template <class T>
__global__ void scale_kernel(T* x, int64_t n, T scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= scale;
}

}  // namespace

void f32_to_bf16(const float* src, uint16_t* dst, int64_t n, void* stream) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<blocks_for(n, kMaxBlocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(src, dst, n);
  HALO_CUDA_CHECK_LAUNCH("f32_to_bf16");
}

void bf16_to_f32_scaled(const uint16_t* src, float* dst, int64_t n, float scale, void* stream) {
  if (n <= 0) return;
  bf16_to_f32_scaled_kernel<<<blocks_for(n, kMaxBlocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(src, dst, n, scale);
  HALO_CUDA_CHECK_LAUNCH("bf16_to_f32_scaled");
}

void scale_f32(float* x, int64_t n, float scale, void* stream) {
  if (n <= 0) return;
  scale_kernel<float><<<blocks_for(n, kMaxBlocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, n, scale);
  HALO_CUDA_CHECK_LAUNCH("scale_f32");
}

void scale_f64(double* x, int64_t n, double scale, void* stream) {
  if (n <= 0) return;
  scale_kernel<double><<<blocks_for(n, kMaxBlocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, n, scale);
  HALO_CUDA_CHECK_LAUNCH("scale_f64");
}

}  // namespace halo::cuda::nccl_pack
