// Upsampling kernels (declared in layer_ops.hpp). Forward: one thread per output element
// reads its one (nearest) or four (bilinear) sources. Backward: one thread per output
// element adds its gradient to those sources with f32 atomics; with channels-last data the
// threads of a warp hit 32 different channels, so the atomics rarely collide.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/launch.cuh"
#include "cuda/upsample.hpp"

namespace halo::cuda::raw {

namespace {

// Output element i -> (n, c, z, y, x); with channels-last output the channel varies fastest,
// so neighbouring threads touch neighbouring addresses.
__device__ __forceinline__ void decompose(int64_t i, const UpsampleDesc& d, int64_t& n, int64_t& c, int64_t o[3]) {
  const bool channels_inner = d.ys[1] == 1 && d.C > 1;
  if (channels_inner) {
    c = i % d.C;
    i /= d.C;
  }
  o[2] = i % d.out[2];
  i /= d.out[2];
  o[1] = i % d.out[1];
  i /= d.out[1];
  o[0] = i % d.out[0];
  i /= d.out[0];
  if (!channels_inner) {
    c = i % d.C;
    i /= d.C;
  }
  n = i;
}

__device__ __forceinline__ int64_t nearest(int64_t o, int64_t in, int64_t out) { return min(in - 1, o * in / out); }

// Linear interpolation along one axis: sources i0, i1 and the weight of i1 (f64 coordinates,
// as the CPU kernels compute them).
__device__ __forceinline__ void lerp(int64_t o, int64_t in, int64_t out, bool align, int64_t& i0, int64_t& i1,
                                     float& w1) {
  double src;
  if (align)
    src = out > 1 ? double(o) * double(in - 1) / double(out - 1) : 0.0;
  else
    src = fmax(0.0, (double(o) + 0.5) * double(in) / double(out) - 0.5);
  i0 = min(int64_t(floor(src)), in - 1);
  i1 = min(i0 + 1, in - 1);
  w1 = float(src - double(i0));
}

template <class T>
__global__ void upsample_fwd_kernel(const T* x, T* y, UpsampleDesc d, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t nb, c, o[3];
    decompose(i, d, nb, c, o);
    const T* xb = x + nb * d.xs[0] + c * d.xs[1];
    float v;
    if (!d.bilinear) {
      v = ld(xb, nearest(o[0], d.in[0], d.out[0]) * d.xs[2] + nearest(o[1], d.in[1], d.out[1]) * d.xs[3] +
                     nearest(o[2], d.in[2], d.out[2]) * d.xs[4]);
    } else {
      int64_t h0, h1, w0, w1;
      float a1, b1;
      lerp(o[1], d.in[1], d.out[1], d.align_corners, h0, h1, a1);
      lerp(o[2], d.in[2], d.out[2], d.align_corners, w0, w1, b1);
      const float a0 = 1.f - a1, b0 = 1.f - b1;
      const T* r0 = xb + h0 * d.xs[3];
      const T* r1 = xb + h1 * d.xs[3];
      v = a0 * (b0 * ld(r0, w0 * d.xs[4]) + b1 * ld(r0, w1 * d.xs[4])) +
          a1 * (b0 * ld(r1, w0 * d.xs[4]) + b1 * ld(r1, w1 * d.xs[4]));
    }
    st(y, nb * d.ys[0] + c * d.ys[1] + o[0] * d.ys[2] + o[1] * d.ys[3] + o[2] * d.ys[4], v);
  }
}

template <class T>
__global__ void upsample_bwd_kernel(const T* dy, float* dx, UpsampleDesc d, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t nb, c, o[3];
    decompose(i, d, nb, c, o);
    const float g = ld(dy, nb * d.ys[0] + c * d.ys[1] + o[0] * d.ys[2] + o[1] * d.ys[3] + o[2] * d.ys[4]);
    float* xb = dx + nb * d.xs[0] + c * d.xs[1];
    if (!d.bilinear) {
      atomicAdd(xb + nearest(o[0], d.in[0], d.out[0]) * d.xs[2] + nearest(o[1], d.in[1], d.out[1]) * d.xs[3] +
                    nearest(o[2], d.in[2], d.out[2]) * d.xs[4],
                g);
    } else {
      int64_t h0, h1, w0, w1;
      float a1, b1;
      lerp(o[1], d.in[1], d.out[1], d.align_corners, h0, h1, a1);
      lerp(o[2], d.in[2], d.out[2], d.align_corners, w0, w1, b1);
      const float a0 = 1.f - a1, b0 = 1.f - b1;
      float* r0 = xb + h0 * d.xs[3];
      float* r1 = xb + h1 * d.xs[3];
      atomicAdd(r0 + w0 * d.xs[4], a0 * b0 * g);
      atomicAdd(r0 + w1 * d.xs[4], a0 * b1 * g);
      atomicAdd(r1 + w0 * d.xs[4], a1 * b0 * g);
      atomicAdd(r1 + w1 * d.xs[4], a1 * b1 * g);
    }
  }
}

}  // namespace

void upsample_forward(const void* x, void* y, bool bf16, const UpsampleDesc& d, void* stream) {
  const int64_t n = d.N * d.C * d.out[0] * d.out[1] * d.out[2];
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16)
    upsample_fwd_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const bf16_t*>(x), static_cast<bf16_t*>(y), d, n);
  else
    upsample_fwd_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const float*>(x), static_cast<float*>(y), d, n);
  HALO_CUDA_CHECK_LAUNCH("upsample_forward");
}

void upsample_backward(const void* dy, bool bf16, float* dx, const UpsampleDesc& d, void* stream) {
  const int64_t n = d.N * d.C * d.out[0] * d.out[1] * d.out[2];
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16)
    upsample_bwd_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const bf16_t*>(dy), dx, d, n);
  else
    upsample_bwd_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const float*>(dy), dx, d, n);
  HALO_CUDA_CHECK_LAUNCH("upsample_backward");
}

}  // namespace halo::cuda::raw
