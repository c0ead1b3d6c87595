// Max and average pooling over explicit strides (any layout; 2-D pooling as depth 1): a
// pooling pass moves bytes, and a strided gather needs no workspace or index buffer.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>

#include "cuda/launch.cuh"
#include "cuda/pool.hpp"

namespace halo::cuda::raw {

namespace {

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
    st(y, nb * d.ys[0] + c * d.ys[1] + od * d.ys[2] + oh * d.ys[3] + ow * d.ys[4], (d.kind == ops::PoolKind::max) ? best : sum / div);
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
          if (!(d.kind == ops::PoolKind::max)) {
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
    if ((d.kind == ops::PoolKind::max)) {
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
    const float share = (d.kind == ops::PoolKind::max) ? 0.f : g / float(d.k[0] * d.k[1] * d.k[2]);
    for (int64_t a = 0; a < d.k[0]; ++a)
      for (int64_t b = 0; b < d.k[1]; ++b)
        for (int64_t e = 0; e < d.k[2]; ++e) {
          const int64_t off = (z0 + a) * d.xs[2] + (y0 + b) * d.xs[3] + (x0 + e) * d.xs[4];
          st(dxb, off, (d.kind == ops::PoolKind::max) ? (off == best_at ? g : 0.f) : share);
        }
  }
}

}  // namespace

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

}  // namespace halo::cuda::raw
