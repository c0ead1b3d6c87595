// Kernels behind the op dispatch (declared in ops.hpp). Most are memory-bound grid-stride
// loops; reductions keep per-block partial sums and add them with one atomic per block.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>

#include "activation_math.hpp"
#include "cuda/check.hpp"
#include "cuda/device_access.cuh"
#include "cuda/ops.hpp"

namespace halo::cuda::raw {

namespace {

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) { return unsigned(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 8192))); }

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

// ---- strided copy ----
template <class D, class S, class I>
__global__ void strided_copy_kernel(D* dst, const S* src, StridedDesc d, I n, bool accumulate) {
  HALO_GRID_LOOP_T(I, i, n) {
    I rest = i;
    int64_t od = 0, os = 0;
    for (int k = d.nd - 1; k >= 0; --k) {
      const I idx = rest % I(d.shape[k]);
      rest /= I(d.shape[k]);
      od += idx * d.dst_stride[k];
      os += idx * d.src_stride[k];
    }
    const float v = ld(src, os);
    st(dst, od, accumulate ? ld(dst, od) + v : v);
  }
}

// ---- conv epilogue and per-channel sums ----
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

__device__ __forceinline__ float block_sum_f(float v) {
  __shared__ float warp_sums[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  __syncthreads();  // warp_sums may still be read by a previous call
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.f;
  if (threadIdx.x < 32)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
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
    acc = block_sum_f(acc);
    if (threadIdx.x == 0) atomicAdd(&out[p % C], acc);
  }
}

// ---- pooling ----
// Flat thread index -> (n, c, d, h, w). With channels-last data the channel varies fastest,
// so neighbouring threads touch neighbouring addresses (coalesced); else the width does.
template <class I>
__device__ __forceinline__ void decompose(I i, bool channels_inner, int64_t C_, const int64_t* e, int64_t& n,
                                          int64_t& c, int64_t& z, int64_t& y, int64_t& x) {
  const I C = I(C_), e0 = I(e[0]), e1 = I(e[1]), e2 = I(e[2]);
  if (channels_inner) {
    c = i % C; i /= C;
  }
  x = i % e2; i /= e2;
  y = i % e1; i /= e1;
  z = i % e0; i /= e0;
  if (!channels_inner) {
    c = i % C; i /= C;
  }
  n = i;
}

template <class T, class I>
__global__ void pool_fwd_kernel(const T* x, T* y, PoolDesc d, I n) {
  HALO_GRID_LOOP_T(I, i, n) {
    int64_t nb, c, od, oh, ow;
    decompose(i, d.xs[1] == 1, d.C, d.out, nb, c, od, oh, ow);
    const T* xb = x + nb * d.xs[0] + c * d.xs[1];
    float best = -INFINITY, sum = 0.f;
    int64_t count = 0;
    for (int64_t a = 0; a < d.k[0]; ++a) {
      const int64_t id = od * d.s[0] - d.p[0] + a;
      if (id < 0 || id >= d.in[0]) continue;
      for (int64_t b = 0; b < d.k[1]; ++b) {
        const int64_t ih = oh * d.s[1] - d.p[1] + b;
        if (ih < 0 || ih >= d.in[1]) continue;
        for (int64_t e = 0; e < d.k[2]; ++e) {
          const int64_t iw = ow * d.s[2] - d.p[2] + e;
          if (iw < 0 || iw >= d.in[2]) continue;
          const float v = ld(xb, id * d.xs[2] + ih * d.xs[3] + iw * d.xs[4]);
          best = v > best || v != v ? v : best;  // NaN propagates, as in the CPU kernels
          sum += v;
          ++count;
        }
      }
    }
    const float div = d.count_include_pad ? float(d.k[0] * d.k[1] * d.k[2]) : float(count > 0 ? count : 1);
    st(y, nb * d.ys[0] + c * d.ys[1] + od * d.ys[2] + oh * d.ys[3] + ow * d.ys[4], d.max ? best : sum / div);
  }
}

__device__ __forceinline__ void window_range(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out, int64_t& lo,
                                             int64_t& hi) {
  // Outputs o with o*s - p <= i <= o*s - p + k - 1.
  const int64_t top = i + p;
  lo = top - k + 1 <= 0 ? 0 : (top - k + 1 + s - 1) / s;
  hi = min(top / s, out - 1);
}

// Gather: each input element sums the gradients of the windows covering it. For max pooling
// a window sends its gradient to the first position holding its maximum (the CPU kernels'
// tie rule), found by rescanning the window.
template <class T, class I>
__global__ void pool_bwd_kernel(const T* dy, const T* x, T* dx, PoolDesc d, I n) {
  HALO_GRID_LOOP_T(I, i, n) {
    int64_t nb, c, id, ih, iw;
    decompose(i, d.xs[1] == 1, d.C, d.in, nb, c, id, ih, iw);
    const T* xb = x + nb * d.xs[0] + c * d.xs[1];
    const T* dyb = dy + nb * d.ys[0] + c * d.ys[1];
    int64_t lo[3], hi[3];
    window_range(id, d.k[0], d.s[0], d.p[0], d.out[0], lo[0], hi[0]);
    window_range(ih, d.k[1], d.s[1], d.p[1], d.out[1], lo[1], hi[1]);
    window_range(iw, d.k[2], d.s[2], d.p[2], d.out[2], lo[2], hi[2]);
    float acc = 0.f;
    for (int64_t od = lo[0]; od <= hi[0]; ++od)
      for (int64_t oh = lo[1]; oh <= hi[1]; ++oh)
        for (int64_t ow = lo[2]; ow <= hi[2]; ++ow) {
          const float g = ld(dyb, od * d.ys[2] + oh * d.ys[3] + ow * d.ys[4]);
          if (!d.max) {
            int64_t count = 0;
            if (d.count_include_pad) {
              count = d.k[0] * d.k[1] * d.k[2];
            } else {
              int64_t ext[3];
              const int64_t o[3] = {od, oh, ow};
              for (int q = 0; q < 3; ++q) {
                const int64_t b = o[q] * d.s[q] - d.p[q];
                ext[q] = min(b + d.k[q], d.in[q]) - max(b, int64_t(0));
              }
              count = ext[0] * ext[1] * ext[2];
            }
            acc += g / float(count > 0 ? count : 1);
            continue;
          }
          // Find the window's first maximum.
          float best = -INFINITY;
          int64_t bd = -1, bh = -1, bw = -1;
          for (int64_t a = 0; a < d.k[0]; ++a) {
            const int64_t jd = od * d.s[0] - d.p[0] + a;
            if (jd < 0 || jd >= d.in[0]) continue;
            for (int64_t b = 0; b < d.k[1]; ++b) {
              const int64_t jh = oh * d.s[1] - d.p[1] + b;
              if (jh < 0 || jh >= d.in[1]) continue;
              for (int64_t e = 0; e < d.k[2]; ++e) {
                const int64_t jw = ow * d.s[2] - d.p[2] + e;
                if (jw < 0 || jw >= d.in[2]) continue;
                const float v = ld(xb, jd * d.xs[2] + jh * d.xs[3] + jw * d.xs[4]);
                if (bd < 0 || v > best) {
                  best = v;
                  bd = jd;
                  bh = jh;
                  bw = jw;
                }
              }
            }
          }
          if (bd == id && bh == ih && bw == iw) acc += g;
        }
    st(dx, nb * d.xs[0] + c * d.xs[1] + id * d.xs[2] + ih * d.xs[3] + iw * d.xs[4], acc);
  }
}

// Windows that tile the input (kernel = stride, no padding, sizes divisible): every input
// element lies in exactly one window, so one thread per window finds the maximum once and
// writes the whole window of dx (the gradient at the first maximum, zero elsewhere; for
// average pooling the gradient over the window volume). Same tie rule as the gather above.
template <class T, class I>
__global__ void pool_bwd_tiled_kernel(const T* dy, const T* x, T* dx, PoolDesc d, I n) {
  HALO_GRID_LOOP_T(I, i, n) {
    int64_t nb, c, od, oh, ow;
    decompose(i, d.xs[1] == 1, d.C, d.out, nb, c, od, oh, ow);
    const int64_t xoff = nb * d.xs[0] + c * d.xs[1];
    const T* xb = x + xoff;
    T* dxb = dx + xoff;
    const float g = ld(dy, nb * d.ys[0] + c * d.ys[1] + od * d.ys[2] + oh * d.ys[3] + ow * d.ys[4]);
    const int64_t z0 = od * d.k[0], y0 = oh * d.k[1], x0 = ow * d.k[2];
    int64_t best_at = -1;
    if (d.max) {
      float best = -INFINITY;
      for (int64_t a = 0; a < d.k[0]; ++a)
        for (int64_t b = 0; b < d.k[1]; ++b)
          for (int64_t e = 0; e < d.k[2]; ++e) {
            const int64_t off = (z0 + a) * d.xs[2] + (y0 + b) * d.xs[3] + (x0 + e) * d.xs[4];
            const float v = ld(xb, off);
            if (best_at < 0 || v > best) {
              best = v;
              best_at = off;
            }
          }
    }
    const float share = d.max ? 0.f : g / float(d.k[0] * d.k[1] * d.k[2]);
    for (int64_t a = 0; a < d.k[0]; ++a)
      for (int64_t b = 0; b < d.k[1]; ++b)
        for (int64_t e = 0; e < d.k[2]; ++e) {
          const int64_t off = (z0 + a) * d.xs[2] + (y0 + b) * d.xs[3] + (x0 + e) * d.xs[4];
          st(dxb, off, d.max ? (off == best_at ? g : 0.f) : share);
        }
  }
}

// ---- element-wise and reductions ----
template <class T>
__global__ void mul_kernel(const T* a, const T* b, T* y, int64_t n) {
  HALO_GRID_LOOP(i, n) st(y, i, ld(a, i) * ld(b, i));
}

template <class T>
__global__ void axpby_kernel(float alpha, const T* x, float beta, T* y, int64_t n) {
  HALO_GRID_LOOP(i, n) st(y, i, alpha * ld(x, i) + (beta == 0.f ? 0.f : beta * ld(y, i)));
}

__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_sums[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0;
  if (threadIdx.x < 32)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

template <class T>
__global__ void dot_kernel(const T* a, const T* b, int64_t n, double* out) {
  double acc = 0;
  HALO_GRID_LOOP(i, n) acc += double(ld(a, i)) * (b ? double(ld(b, i)) : 1.0);
  acc = block_sum(acc);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

template <class P, class Q>
__global__ void diff_loss_kernel(DiffLoss kind, const P* p, const Q* t, int64_t n, double* out) {
  double acc = 0;
  HALO_GRID_LOOP(i, n) {
    const double e = double(ld(p, i)) - double(ld(t, i));
    acc += kind == DiffLoss::mse ? e * e : fabs(e);
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

template <class P, class Q>
__global__ void diff_loss_grad_kernel(DiffLoss kind, const P* p, const Q* t, P* g, int64_t n, float scale) {
  HALO_GRID_LOOP(i, n) {
    const float e = ld(p, i) - ld(t, i);
    st(g, i, kind == DiffLoss::mse ? scale * 2.f * e : (e > 0.f ? scale : e < 0.f ? -scale : 0.f));
  }
}

// ---- optimizer updates ----
__global__ void sgd_kernel(float* w, const float* g, float* buf, int64_t n, float lr, float mu, float wd,
                           bool nesterov) {
  HALO_GRID_LOOP(i, n) {
    float d = g[i] + wd * w[i];
    if (buf) {
      const float b = mu * buf[i] + d;
      buf[i] = b;
      d = nesterov ? d + mu * b : b;
    }
    w[i] -= lr * d;
  }
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                            float eps, float l2, float shrink, float ib1, float ib2) {
  HALO_GRID_LOOP(i, n) {
    const float gi = g[i] + l2 * w[i];
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = shrink * w[i] - lr * (mi * ib1) / (sqrtf(vi * ib2) + eps);
  }
}

}  // namespace

void strided_copy(void* dst, bool dst_bf16, const void* src, bool src_bf16, const StridedDesc& d, bool accumulate,
                  void* stream) {
  int64_t n = 1;
  for (int k = 0; k < d.nd; ++k) n *= d.shape[k];
  if (n == 0) return;
  auto s = as_stream(stream);
  int64_t span = 1;  // largest offset reached, to pick the index type
  for (int k = 0; k < d.nd; ++k)
    span += (d.shape[k] - 1) * std::max(std::abs(d.dst_stride[k]), std::abs(d.src_stride[k]));
  HALO_INDEX_TYPE(fits_int32(std::max(n, span)), {
    using Idx = I;
    HALO_BF16_OR_F32(dst_bf16, {
      using DT = T;
      HALO_BF16_OR_F32(src_bf16, strided_copy_kernel<<<blocks_for(n), kThreads, 0, s>>>(
                                     static_cast<DT*>(dst), static_cast<const T*>(src), d, Idx(n), accumulate));
    });
  });
  HALO_CUDA_CHECK_LAUNCH("strided_copy");
}

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

void pool_forward(const void* x, void* y, bool bf16, const PoolDesc& d, void* stream) {
  const int64_t n = d.N * d.C * d.out[0] * d.out[1] * d.out[2];
  if (n == 0) return;
  auto s = as_stream(stream);
  const int64_t nx = d.N * d.C * d.in[0] * d.in[1] * d.in[2];
  HALO_INDEX_TYPE(fits_int32(std::max(n, nx)),
                  HALO_BF16_OR_F32(bf16, pool_fwd_kernel<<<blocks_for(n), kThreads, 0, s>>>(
                                             static_cast<const T*>(x), static_cast<T*>(y), d, I(n))));
  HALO_CUDA_CHECK_LAUNCH("pool_forward");
}

void pool_backward(const void* dy, const void* x, void* dx, bool bf16, const PoolDesc& d, void* stream) {
  const int64_t n = d.N * d.C * d.in[0] * d.in[1] * d.in[2];
  if (n == 0) return;
  auto s = as_stream(stream);
  bool tiled = true;
  for (int q = 0; q < 3; ++q) tiled = tiled && d.k[q] == d.s[q] && d.p[q] == 0 && d.in[q] == d.out[q] * d.k[q];
  const int64_t ny = d.N * d.C * d.out[0] * d.out[1] * d.out[2];
  HALO_INDEX_TYPE(fits_int32(n), {
    if (tiled)
      HALO_BF16_OR_F32(bf16, pool_bwd_tiled_kernel<<<blocks_for(ny), kThreads, 0, s>>>(
                                 static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx), d, I(ny)));
    else
      HALO_BF16_OR_F32(bf16, pool_bwd_kernel<<<blocks_for(n), kThreads, 0, s>>>(
                                 static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx), d, I(n)));
  });
  HALO_CUDA_CHECK_LAUNCH("pool_backward");
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

void diff_loss(DiffLoss kind, const void* p, bool p_bf16, const void* t, bool t_bf16, int64_t n, double* out,
               void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  const unsigned b = std::min(blocks_for(n), 1024u);
  HALO_BF16_OR_F32(p_bf16, {
    using PT = T;
    HALO_BF16_OR_F32(t_bf16, diff_loss_kernel<<<b, kThreads, 0, s>>>(kind, static_cast<const PT*>(p),
                                                                       static_cast<const T*>(t), n, out));
  });
  HALO_CUDA_CHECK_LAUNCH("diff_loss");
}

void diff_loss_grad(DiffLoss kind, const void* p, bool p_bf16, const void* t, bool t_bf16, void* g, int64_t n,
                    float scale, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  HALO_BF16_OR_F32(p_bf16, {
    using PT = T;
    HALO_BF16_OR_F32(t_bf16, diff_loss_grad_kernel<<<blocks_for(n), kThreads, 0, s>>>(
                                 kind, static_cast<const PT*>(p), static_cast<const T*>(t), static_cast<PT*>(g), n,
                                 scale));
  });
  HALO_CUDA_CHECK_LAUNCH("diff_loss_grad");
}

void sgd_update(float* w, const float* g, float* buf, int64_t n, float lr, float momentum, float wd, bool nesterov,
                void* stream) {
  if (n == 0) return;
  sgd_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(w, g, buf, n, lr, momentum, wd, nesterov);
  HALO_CUDA_CHECK_LAUNCH("sgd_update");
}

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                 float wd, bool decoupled, float bias1, float bias2, void* stream) {
  if (n == 0) return;
  const float l2 = decoupled ? 0.f : wd, shrink = decoupled ? 1.f - lr * wd : 1.f;
  adam_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(w, g, m, v, n, lr, beta1, beta2, eps, l2, shrink,
                                                                 1.f / bias1, 1.f / bias2);
  HALO_CUDA_CHECK_LAUNCH("adam_update");
}

}  // namespace halo::cuda::raw
