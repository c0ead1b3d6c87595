// Kernels behind the op dispatch (declared in ops.hpp). Most are memory-bound grid-stride
// loops; reductions keep per-block partial sums and add them with one atomic per block.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/check.hpp"
#include "cuda/ops.hpp"

namespace halo::cuda::raw {

namespace {

using bf16_t = __nv_bfloat16;

__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16_t* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16_t* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) { return unsigned(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 8192))); }
inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

#define HALO_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

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
template <class D, class S>
__global__ void strided_copy_kernel(D* dst, const S* src, StridedDesc d, int64_t n, bool accumulate) {
  HALO_GRID_LOOP(i, n) {
    int64_t rest = i, od = 0, os = 0;
    for (int k = d.nd - 1; k >= 0; --k) {
      const int64_t idx = rest % d.shape[k];
      rest /= d.shape[k];
      od += idx * d.dst_stride[k];
      os += idx * d.src_stride[k];
    }
    const float v = ld(src, os);
    st(dst, od, accumulate ? ld(dst, od) + v : v);
  }
}

// ---- conv epilogue and per-channel sums ----
template <ops::Activation A>
__device__ __forceinline__ float activate(float v, float slope) {
  if constexpr (A == ops::Activation::relu) return v > 0.f ? v : 0.f;
  if constexpr (A == ops::Activation::leaky_relu) return v > 0.f ? v : v * slope;
  if constexpr (A == ops::Activation::tanh) return tanhf(v);
  if constexpr (A == ops::Activation::sigmoid) return 1.f / (1.f + expf(-v));
  return v;
}

template <ops::Activation A, class T>
__global__ void bias_act_kernel(T* y, const float* bias, int64_t n, int64_t C, int64_t inner, float slope) {
  HALO_GRID_LOOP(i, n) {
    float v = ld(y, i);
    if (bias) v += bias[(i / inner) % C];
    st(y, i, activate<A>(v, slope));
  }
}

// Per-block partial sums in shared memory (C floats), then one atomic per channel and block.
template <class T>
__global__ void channel_sums_kernel(const T* g, int64_t n, int64_t C, int64_t inner, float* out) {
  extern __shared__ float part[];
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) part[c] = 0.f;
  __syncthreads();
  HALO_GRID_LOOP(i, n) atomicAdd(&part[(i / inner) % C], ld(g, i));
  __syncthreads();
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(&out[c], part[c]);
}

// ---- pooling ----
// Flat thread index -> (n, c, d, h, w). With channels-last data the channel varies fastest,
// so neighbouring threads touch neighbouring addresses (coalesced); else the width does.
__device__ __forceinline__ void decompose(int64_t i, bool channels_inner, int64_t C, const int64_t* e, int64_t& n,
                                          int64_t& c, int64_t& z, int64_t& y, int64_t& x) {
  if (channels_inner) {
    c = i % C; i /= C;
  }
  x = i % e[2]; i /= e[2];
  y = i % e[1]; i /= e[1];
  z = i % e[0]; i /= e[0];
  if (!channels_inner) {
    c = i % C; i /= C;
  }
  n = i;
}

template <class T>
__global__ void pool_fwd_kernel(const T* x, T* y, PoolDesc d, int64_t n) {
  HALO_GRID_LOOP(i, n) {
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
template <class T>
__global__ void pool_bwd_kernel(const T* dy, const T* x, T* dx, PoolDesc d, int64_t n) {
  HALO_GRID_LOOP(i, n) {
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
  HALO_BF16_OR_F32(dst_bf16, {
    using DT = T;
    HALO_BF16_OR_F32(src_bf16, strided_copy_kernel<<<blocks_for(n), kThreads, 0, s>>>(
                                   static_cast<DT*>(dst), static_cast<const T*>(src), d, n, accumulate));
  });
  HALO_CUDA_CHECK_LAUNCH("strided_copy");
}

void bias_activation(void* y, bool bf16, const float* bias, int64_t n, int64_t C, int64_t inner, ops::Activation a,
                     float slope, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  const unsigned b = blocks_for(n);
  HALO_BF16_OR_F32(bf16, {
    T* p = static_cast<T*>(y);
    switch (a) {
      case ops::Activation::none: bias_act_kernel<ops::Activation::none><<<b, kThreads, 0, s>>>(p, bias, n, C, inner, slope); break;
      case ops::Activation::relu: bias_act_kernel<ops::Activation::relu><<<b, kThreads, 0, s>>>(p, bias, n, C, inner, slope); break;
      case ops::Activation::leaky_relu: bias_act_kernel<ops::Activation::leaky_relu><<<b, kThreads, 0, s>>>(p, bias, n, C, inner, slope); break;
      case ops::Activation::tanh: bias_act_kernel<ops::Activation::tanh><<<b, kThreads, 0, s>>>(p, bias, n, C, inner, slope); break;
      case ops::Activation::sigmoid: bias_act_kernel<ops::Activation::sigmoid><<<b, kThreads, 0, s>>>(p, bias, n, C, inner, slope); break;
    }
  });
  HALO_CUDA_CHECK_LAUNCH("bias_activation");
}

void channel_sums_add(const void* g, bool bf16, int64_t n, int64_t C, int64_t inner, float* out, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  // Fewer blocks than the element loops: each block pays C atomics at its end.
  const unsigned b = unsigned(std::min<int64_t>(blocks_for(n), 1024));
  const size_t shm = size_t(C) * sizeof(float);
  HALO_BF16_OR_F32(bf16, channel_sums_kernel<<<b, kThreads, shm, s>>>(static_cast<const T*>(g), n, C, inner, out));
  HALO_CUDA_CHECK_LAUNCH("channel_sums_add");
}

void pool_forward(const void* x, void* y, bool bf16, const PoolDesc& d, void* stream) {
  const int64_t n = d.N * d.C * d.out[0] * d.out[1] * d.out[2];
  if (n == 0) return;
  auto s = as_stream(stream);
  HALO_BF16_OR_F32(bf16, pool_fwd_kernel<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const T*>(x),
                                                                              static_cast<T*>(y), d, n));
  HALO_CUDA_CHECK_LAUNCH("pool_forward");
}

void pool_backward(const void* dy, const void* x, void* dx, bool bf16, const PoolDesc& d, void* stream) {
  const int64_t n = d.N * d.C * d.in[0] * d.in[1] * d.in[2];
  if (n == 0) return;
  auto s = as_stream(stream);
  HALO_BF16_OR_F32(bf16, pool_bwd_kernel<<<blocks_for(n), kThreads, 0, s>>>(
                             static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<T*>(dx), d, n));
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
