// Element-wise kernels (declared in elementwise.hpp and ops.hpp): activations, scale, axpy,
// fill, mul, axpby and the dot-product reduction. Grid-stride loops over a flat array:
// these ops move bytes, so what matters is coalesced access and enough blocks in flight.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "activation_math.hpp"
#include "cuda/elementwise.hpp"
#include "cuda/launch.cuh"

namespace halo::cuda::raw {

namespace {

template <Activation F, class T>
__global__ void act_fwd_kernel(const T* __restrict__ x, T* y, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, kernels::activation_value<F>(ld(x, i), alpha));
}

// `v` is the forward input for relu/leaky_relu or the forward output (see activation_math.hpp).
template <Activation F, class T>
__global__ void act_bwd_kernel(const T* __restrict__ v, const T* dy, T* dx, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(dx, i, kernels::activation_grad<F>(ld(v, i), ld(dy, i), alpha));
}

template <class T>
__global__ void scale_kernel(T* x, int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(x, i, alpha * ld(x, i));
}

template <class T>
__global__ void axpy_kernel(float alpha, const T* __restrict__ x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, ld(y, i) + alpha * ld(x, i));
}

template <class T>
__global__ void fill_kernel(T* x, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(x, i, value);
}

// The activation, scale, axpy and fill launches allow a wider grid than the default.
constexpr int64_t kWideGrid = 65536;

template <class T>
void launch_fwd(Activation f, const void* x, void* y, int64_t n, float alpha, cudaStream_t s) {
  auto xi = static_cast<const T*>(x);
  auto yo = static_cast<T*>(y);
  kernels::with_activation(f, [&](auto kind) {
    act_fwd_kernel<decltype(kind)::value><<<blocks_for(n, kWideGrid), kThreads, 0, s>>>(xi, yo, n, alpha);
  });
}

template <class T>
void launch_bwd(Activation f, const void* v, const void* dy, void* dx, int64_t n, float alpha, cudaStream_t s) {
  auto vi = static_cast<const T*>(v);
  auto dyi = static_cast<const T*>(dy);
  auto dxo = static_cast<T*>(dx);
  kernels::with_activation(f, [&](auto kind) {
    act_bwd_kernel<decltype(kind)::value><<<blocks_for(n, kWideGrid), kThreads, 0, s>>>(vi, dyi, dxo, n, alpha);
  });
}

template <class T>
__global__ void mul_kernel(const T* a, const T* b, T* y, int64_t n) {
  HALO_GRID_LOOP(i, n) st(y, i, ld(a, i) * ld(b, i));
}

template <class T>
__global__ void axpby_kernel(float alpha, const T* x, float beta, T* y, int64_t n) {
  HALO_GRID_LOOP(i, n) st(y, i, alpha * ld(x, i) + (beta == 0.f ? 0.f : beta * ld(y, i)));
}

template <class T>
__global__ void dot_kernel(const T* a, const T* b, int64_t n, double* out) {
  double acc = 0;
  HALO_GRID_LOOP(i, n) acc += double(ld(a, i)) * (b ? double(ld(b, i)) : 1.0);
  acc = block_sum(acc);
  if (threadIdx.x == 0) atomicAdd(out, acc);
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
  if (bf16) scale_kernel<<<blocks_for(n, kWideGrid), kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(x), n, alpha);
  else scale_kernel<<<blocks_for(n, kWideGrid), kThreads, 0, s>>>(static_cast<float*>(x), n, alpha);
  HALO_CUDA_CHECK_LAUNCH("scale");
}

void axpy(float alpha, const void* x, void* y, int64_t n, bool bf16, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16) axpy_kernel<<<blocks_for(n, kWideGrid), kThreads, 0, s>>>(alpha, static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), n);
  else axpy_kernel<<<blocks_for(n, kWideGrid), kThreads, 0, s>>>(alpha, static_cast<const float*>(x), static_cast<float*>(y), n);
  HALO_CUDA_CHECK_LAUNCH("axpy");
}

void fill(void* x, int64_t n, bool bf16, float value, void* stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16) fill_kernel<<<blocks_for(n, kWideGrid), kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(x), n, value);
  else fill_kernel<<<blocks_for(n, kWideGrid), kThreads, 0, s>>>(static_cast<float*>(x), n, value);
  HALO_CUDA_CHECK_LAUNCH("fill");
}

void mul(const void* a, const void* b, void* y, int64_t n, bool bf16, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  HALO_BF16_OR_F32(bf16, mul_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const T*>(a),
                                                                         static_cast<const T*>(b), static_cast<T*>(y), n));
  HALO_CUDA_CHECK_LAUNCH("mul");
}

void axpby(float alpha, const void* x, float beta, void* y, int64_t n, bool bf16, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  HALO_BF16_OR_F32(bf16, axpby_kernel<<<blocks_for(n), kThreads, 0, s>>>(alpha, static_cast<const T*>(x), beta,
                                                                           static_cast<T*>(y), n));
  HALO_CUDA_CHECK_LAUNCH("axpby");
}

void dot(const void* a, const void* b, int64_t n, bool bf16, double* out, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  HALO_BF16_OR_F32(bf16, dot_kernel<<<std::min(blocks_for(n), 1024u), kThreads, 0, s>>>(
                             static_cast<const T*>(a), static_cast<const T*>(b), n, out));
  HALO_CUDA_CHECK_LAUNCH("dot");
}

}  // namespace halo::cuda::raw
