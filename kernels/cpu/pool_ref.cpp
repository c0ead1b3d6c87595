// Reference pooling kernels: direct loops over each output's window, f32 and f64.
#include <algorithm>
#include <limits>
#include <vector>

#include "cpu/pool.hpp"

namespace halo::kernels::cpu {
namespace {

// Pooling geometry with 2D problems lifted to 3D (depth 1, kernel 1, stride 1, pad 0).
struct Geometry {
  int64_t N, C, in[3], out[3], k[3], s[3], p[3];
};

Geometry geometry(const Shape& xs, const Shape& ys, const ops::PoolConfig& cfg) {
  Geometry g{};
  g.N = xs[0];
  g.C = xs[1];
  const int sd = cfg.spatial_dims();
  const int lift = 3 - sd;
  for (int d = 0; d < 3; ++d) {
    if (d < lift) {
      g.in[d] = g.out[d] = g.k[d] = g.s[d] = 1;
      g.p[d] = 0;
    } else {
      const size_t j = size_t(d - lift);
      g.in[d] = xs[2 + j];
      g.out[d] = ys[2 + j];
      g.k[d] = cfg.kernel[j];
      g.s[d] = cfg.stride[j];
      g.p[d] = cfg.padding[j];
    }
  }
  return g;
}

// Calls f(window_begin[3], window_end[3], full_volume) for each output position of a plane,
// where begin/end are clipped to the input (full_volume counts the padded window).
template <class F>
void for_each_window(const Geometry& g, F&& f) {
  for (int64_t od = 0; od < g.out[0]; ++od)
    for (int64_t oh = 0; oh < g.out[1]; ++oh)
      for (int64_t ow = 0; ow < g.out[2]; ++ow) {
        const int64_t o[3] = {od, oh, ow};
        int64_t b[3], e[3];
        int64_t full = 1;
        for (int d = 0; d < 3; ++d) {
          const int64_t start = o[d] * g.s[d] - g.p[d];
          const int64_t stop = std::min(start + g.k[d], g.in[d] + g.p[d]);
          full *= stop - start;
          b[d] = std::max<int64_t>(start, 0);
          e[d] = std::min(stop, g.in[d]);
        }
        f((od * g.out[1] + oh) * g.out[2] + ow, b, e, full);
      }
}

}  // namespace

template <class T>
void pool_forward_ref(const Tensor& x, Tensor& y, const ops::PoolConfig& cfg) {
  const Geometry g = geometry(x.shape(), y.shape(), cfg);
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const T* xi = xp + nc * in_plane;
    T* yo = yp + nc * out_plane;
    for_each_window(g, [&](int64_t o, const int64_t* b, const int64_t* e, int64_t full) {
      T best = -std::numeric_limits<T>::infinity();
      T sum = 0;
      for (int64_t d = b[0]; d < e[0]; ++d)
        for (int64_t h = b[1]; h < e[1]; ++h)
          for (int64_t w = b[2]; w < e[2]; ++w) {
            const T v = xi[(d * g.in[1] + h) * g.in[2] + w];
            if (v > best) best = v;
            sum += v;
          }
      if (cfg.kind == ops::PoolKind::max) {
        yo[o] = best;
      } else {
        const int64_t valid = (e[0] - b[0]) * (e[1] - b[1]) * (e[2] - b[2]);
        yo[o] = sum / T(cfg.count_include_pad ? full : valid);
      }
    });
  }
}

template <class T>
void pool_backward_ref(const Tensor& dy, const Tensor& x, Tensor& dx, const ops::PoolConfig& cfg) {
  const Geometry g = geometry(x.shape(), dy.shape(), cfg);
  const int64_t in_plane = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_plane = g.out[0] * g.out[1] * g.out[2];
  const T* xp = x.data<T>();
  const T* dyp = dy.data<T>();
  T* dxp = dx.data<T>();
  // Planes are independent, so threads never write the same dx element.
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const T* xi = xp + nc * in_plane;
    const T* go = dyp + nc * out_plane;
    T* gi = dxp + nc * in_plane;
    for_each_window(g, [&](int64_t o, const int64_t* b, const int64_t* e, int64_t full) {
      if (cfg.kind == ops::PoolKind::max) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t at = -1;
        for (int64_t d = b[0]; d < e[0]; ++d)
          for (int64_t h = b[1]; h < e[1]; ++h)
            for (int64_t w = b[2]; w < e[2]; ++w) {
              const int64_t i = (d * g.in[1] + h) * g.in[2] + w;
              if (at < 0 || xi[i] > best) {
                best = xi[i];
                at = i;
              }
            }
        if (at >= 0) gi[at] += go[o];
      } else {
        const int64_t valid = (e[0] - b[0]) * (e[1] - b[1]) * (e[2] - b[2]);
        const T share = go[o] / T(cfg.count_include_pad ? full : valid);
        for (int64_t d = b[0]; d < e[0]; ++d)
          for (int64_t h = b[1]; h < e[1]; ++h)
            for (int64_t w = b[2]; w < e[2]; ++w) gi[(d * g.in[1] + h) * g.in[2] + w] += share;
      }
    });
  }
}

template <class T>
void global_avg_pool_forward(const Tensor& x, T* y) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / std::max<int64_t>(1, N * C);
  const T* xp = x.data<T>();
  if (x.is_contiguous()) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; ++nc) {
      double s = 0;
      const T* row = xp + nc * S;
      for (int64_t i = 0; i < S; ++i) s += double(row[i]);
      y[nc] = T(s / double(S));
    }
    return;
  }
  // Channels-last: each sample is S rows of C; accumulate rows into per-channel sums.
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> acc(size_t(C), 0.0);
    const T* sample = xp + n * S * C;
    for (int64_t i = 0; i < S; ++i) {
      const T* row = sample + i * C;
      for (int64_t c = 0; c < C; ++c) acc[size_t(c)] += double(row[c]);
    }
    for (int64_t c = 0; c < C; ++c) y[n * C + c] = T(acc[size_t(c)] / double(S));
  }
}

template <class T>
void global_avg_pool_backward(const T* dy, Tensor& dx) {
  const int64_t N = dx.size(0), C = dx.size(1), S = dx.numel() / std::max<int64_t>(1, N * C);
  T* dxp = dx.data<T>();
  const T inv = T(1) / T(S);
  if (dx.is_contiguous()) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; ++nc) std::fill_n(dxp + nc * S, S, dy[nc] * inv);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < S; ++i) {
      T* row = dxp + (n * S + i) * C;
      for (int64_t c = 0; c < C; ++c) row[c] = dy[n * C + c] * inv;
    }
}

template void pool_forward_ref<float>(const Tensor&, Tensor&, const ops::PoolConfig&);
template void pool_forward_ref<double>(const Tensor&, Tensor&, const ops::PoolConfig&);
template void pool_backward_ref<float>(const Tensor&, const Tensor&, Tensor&, const ops::PoolConfig&);
template void pool_backward_ref<double>(const Tensor&, const Tensor&, Tensor&, const ops::PoolConfig&);
template void global_avg_pool_forward<float>(const Tensor&, float*);
template void global_avg_pool_forward<double>(const Tensor&, double*);
template void global_avg_pool_backward<float>(const float*, Tensor&);
template void global_avg_pool_backward<double>(const double*, Tensor&);

}  // namespace halo::kernels::cpu
