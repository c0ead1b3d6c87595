// Reference upsampling kernels: each output element reads its source(s) directly; the
// backward kernels scatter into the sources plane by plane (planes are thread-private).
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/upsample.hpp"

namespace halo::kernels::cpu {
namespace {

// Spatial sizes lifted to 3D (depth 1 for 2D).
struct Planes {
  int64_t NC, in[3], out[3];
};
Planes planes(const Shape& xs, const Shape& ys) {
  Planes p{};
  p.NC = xs[0] * xs[1];
  const size_t sd = xs.size() - 2, lift = 3 - sd;
  for (size_t d = 0; d < 3; ++d) {
    p.in[d] = d < lift ? 1 : xs[2 + d - lift];
    p.out[d] = d < lift ? 1 : ys[2 + d - lift];
  }
  return p;
}

std::vector<int64_t> nearest_index(int64_t in, int64_t out) {
  std::vector<int64_t> src(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) src[size_t(o)] = std::min(in - 1, o * in / out);
  return src;
}

// Linear interpolation along one axis: source i0, i1 and the weight of i1.
struct Lerp {
  std::vector<int64_t> i0, i1;
  std::vector<double> w1;
};
Lerp lerp(int64_t in, int64_t out, bool align_corners) {
  Lerp l;
  l.i0.resize(size_t(out));
  l.i1.resize(size_t(out));
  l.w1.resize(size_t(out));
  for (int64_t o = 0; o < out; ++o) {
    double src;
    if (align_corners)
      src = out > 1 ? double(o) * double(in - 1) / double(out - 1) : 0.0;
    else
      src = std::max(0.0, (double(o) + 0.5) * double(in) / double(out) - 0.5);
    const int64_t i0 = std::min(int64_t(std::floor(src)), in - 1);
    l.i0[size_t(o)] = i0;
    l.i1[size_t(o)] = std::min(i0 + 1, in - 1);
    l.w1[size_t(o)] = src - double(i0);
  }
  return l;
}

}  // namespace

template <class T>
void upsample_nearest_forward_ref(const Tensor& x, Tensor& y) {
  const Planes p = planes(x.shape(), y.shape());
  const auto sd = nearest_index(p.in[0], p.out[0]), sh = nearest_index(p.in[1], p.out[1]),
             sw = nearest_index(p.in[2], p.out[2]);
  const int64_t ip = p.in[0] * p.in[1] * p.in[2], op = p.out[0] * p.out[1] * p.out[2];
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < p.NC; ++nc)
    for (int64_t d = 0; d < p.out[0]; ++d)
      for (int64_t h = 0; h < p.out[1]; ++h)
        for (int64_t w = 0; w < p.out[2]; ++w)
          yp[nc * op + (d * p.out[1] + h) * p.out[2] + w] =
              xp[nc * ip + (sd[size_t(d)] * p.in[1] + sh[size_t(h)]) * p.in[2] + sw[size_t(w)]];
}

template <class T>
void upsample_nearest_backward_ref(const Tensor& dy, Tensor& dx) {
  const Planes p = planes(dx.shape(), dy.shape());
  const auto sd = nearest_index(p.in[0], p.out[0]), sh = nearest_index(p.in[1], p.out[1]),
             sw = nearest_index(p.in[2], p.out[2]);
  const int64_t ip = p.in[0] * p.in[1] * p.in[2], op = p.out[0] * p.out[1] * p.out[2];
  const T* gp = dy.data<T>();
  T* xp = dx.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < p.NC; ++nc)
    for (int64_t d = 0; d < p.out[0]; ++d)
      for (int64_t h = 0; h < p.out[1]; ++h)
        for (int64_t w = 0; w < p.out[2]; ++w)
          xp[nc * ip + (sd[size_t(d)] * p.in[1] + sh[size_t(h)]) * p.in[2] + sw[size_t(w)]] +=
              gp[nc * op + (d * p.out[1] + h) * p.out[2] + w];
}

template <class T>
void upsample_bilinear_forward_ref(const Tensor& x, Tensor& y, bool align_corners) {
  const Planes p = planes(x.shape(), y.shape());
  const Lerp lh = lerp(p.in[1], p.out[1], align_corners), lw = lerp(p.in[2], p.out[2], align_corners);
  const int64_t ip = p.in[1] * p.in[2], op = p.out[1] * p.out[2];
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < p.NC; ++nc) {
    const T* src = xp + nc * ip;
    for (int64_t h = 0; h < p.out[1]; ++h) {
      const size_t uh = size_t(h);
      const T a1 = T(lh.w1[uh]), a0 = T(1) - a1;
      const T* r0 = src + lh.i0[uh] * p.in[2];
      const T* r1 = src + lh.i1[uh] * p.in[2];
      for (int64_t w = 0; w < p.out[2]; ++w) {
        const size_t uw = size_t(w);
        const T b1 = T(lw.w1[uw]), b0 = T(1) - b1;
        const int64_t j0 = lw.i0[uw], j1 = lw.i1[uw];
        yp[nc * op + h * p.out[2] + w] = a0 * (b0 * r0[j0] + b1 * r0[j1]) + a1 * (b0 * r1[j0] + b1 * r1[j1]);
      }
    }
  }
}

template <class T>
void upsample_bilinear_backward_ref(const Tensor& dy, Tensor& dx, bool align_corners) {
  const Planes p = planes(dx.shape(), dy.shape());
  const Lerp lh = lerp(p.in[1], p.out[1], align_corners), lw = lerp(p.in[2], p.out[2], align_corners);
  const int64_t ip = p.in[1] * p.in[2], op = p.out[1] * p.out[2];
  const T* gp = dy.data<T>();
  T* xp = dx.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < p.NC; ++nc) {
    T* dst = xp + nc * ip;
    for (int64_t h = 0; h < p.out[1]; ++h) {
      const size_t uh = size_t(h);
      const T a1 = T(lh.w1[uh]), a0 = T(1) - a1;
      T* r0 = dst + lh.i0[uh] * p.in[2];
      T* r1 = dst + lh.i1[uh] * p.in[2];
      for (int64_t w = 0; w < p.out[2]; ++w) {
        const size_t uw = size_t(w);
        const T b1 = T(lw.w1[uw]), b0 = T(1) - b1;
        const int64_t j0 = lw.i0[uw], j1 = lw.i1[uw];
        const T g = gp[nc * op + h * p.out[2] + w];
        r0[j0] += a0 * b0 * g;
        r0[j1] += a0 * b1 * g;
        r1[j0] += a1 * b0 * g;
        r1[j1] += a1 * b1 * g;
      }
    }
  }
}

#define HALO_UPSAMPLE_INSTANTIATE(T)                                                  \
  template void upsample_nearest_forward_ref<T>(const Tensor&, Tensor&);             \
  template void upsample_nearest_backward_ref<T>(const Tensor&, Tensor&);            \
  template void upsample_bilinear_forward_ref<T>(const Tensor&, Tensor&, bool);      \
  template void upsample_bilinear_backward_ref<T>(const Tensor&, Tensor&, bool);
HALO_UPSAMPLE_INSTANTIATE(float)
HALO_UPSAMPLE_INSTANTIATE(double)
#undef HALO_UPSAMPLE_INSTANTIATE

}  // namespace halo::kernels::cpu
