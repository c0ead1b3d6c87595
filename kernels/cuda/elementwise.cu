// Element-wise kernels (declared in elementwise.hpp). Grid-stride loops over a flat array:
// these ops move bytes, so what matters is coalesced access and enough blocks in flight.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "activation_math.hpp"
#include "cuda/check.hpp"
#include "cuda/elementwise.hpp"

namespace halo::cuda::raw {

namespace {

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

template <Activation F, class T>
__global__ void act_fwd_kernel(const T* __restrict__ x, T* y, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(y, i, kernels::activation_value<F>(load(x, i), alpha));
}

template <Activation F, class T>
// `v` is the forward input for relu/leaky_relu or the forward output (see activation_math.hpp).
__global__ void act_bwd_kernel(const T* __restrict__ v, const T* dy, T* dx, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(dx, i, kernels::activation_grad<F>(load(v, i), load(dy, i), alpha));
}

template <class T>
__global__ void scale_kernel(T* x, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(x, i, alpha * load(x, i));
}

template <class T>
__global__ void axpy_kernel(float alpha, const T* __restrict__ x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(y, i, load(y, i) + alpha * load(x, i));
}

template <class T>
__global__ void fill_kernel(T* x, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(x, i, value);
}

constexpr int kThreads = 256;
// Enough blocks to fill any current GPU several times over; the grid-stride loop does the rest.
inline unsigned blocks_for(int64_t n) { return unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, 65536)); }

template <class T>
void launch_fwd(Activation f, const void* x, void* y, int64_t n, float alpha, cudaStream_t s) {
  auto xi = static_cast<const T*>(x);
  auto yo = static_cast<T*>(y);
  kernels::with_activation(f, [&](auto kind) {
    act_fwd_kernel<decltype(kind)::value><<<blocks_for(n), kThreads, 0, s>>>(xi, yo, n, alpha);
  });
}

template <class T>
void launch_bwd(Activation f, const void* v, const void* dy, void* dx, int64_t n, float alpha, cudaStream_t s) {
  auto vi = static_cast<const T*>(v);
  auto dyi = static_cast<const T*>(dy);
  auto dxo = static_cast<T*>(dx);
  kernels::with_activation(f, [&](auto kind) {
    act_bwd_kernel<decltype(kind)::value><<<blocks_for(n), kThreads, 0, s>>>(vi, dyi, dxo, n, alpha);
  });
}

}  // namespace

void activation_forward(Activation f, const void* x, void* y, int64_t n, bool bf16, float alpha, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16) launch_fwd<__nv_bfloat16>(f, x, y, n, alpha, s);
  else launch_fwd<float>(f, x, y, n, alpha, s);
  HALO_CUDA_CHECK_LAUNCH("activation_forward");
}

void activation_backward(Activation f, const void* xy, const void* dy, void* dx, int64_t n, bool bf16, float alpha,
                         void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16) launch_bwd<__nv_bfloat16>(f, xy, dy, dx, n, alpha, s);
  else launch_bwd<float>(f, xy, dy, dx, n, alpha, s);
  HALO_CUDA_CHECK_LAUNCH("activation_backward");
}

void scale(void* x, int64_t n, bool bf16, float alpha, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16) scale_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(x), n, alpha);
  else scale_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<float*>(x), n, alpha);
  HALO_CUDA_CHECK_LAUNCH("scale");
}

void axpy(float alpha, const void* x, void* y, int64_t n, bool bf16, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16) axpy_kernel<<<blocks_for(n), kThreads, 0, s>>>(alpha, static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), n);
  else axpy_kernel<<<blocks_for(n), kThreads, 0, s>>>(alpha, static_cast<const float*>(x), static_cast<float*>(y), n);
  HALO_CUDA_CHECK_LAUNCH("axpy");
}

void fill(void* x, int64_t n, bool bf16, float value, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16) fill_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(x), n, value);
  else fill_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<float*>(x), n, value);
  HALO_CUDA_CHECK_LAUNCH("fill");
}

}  // namespace halo::cuda::raw
