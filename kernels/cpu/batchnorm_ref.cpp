// Reference BatchNorm kernels on contiguous tensors: one channel's planes at a time,
// channels spread over threads (each thread owns its channels' sums outright).
#include "cpu/batchnorm.hpp"

namespace halo::kernels::cpu {
namespace {
struct Dims {
  int64_t N, C, S;
};
Dims dims_of(const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1);
  return {N, C, N * C != 0 ? x.numel() / (N * C) : 0};
}
}  // namespace

template <class T>
void bn_channel_sums_ref(const Tensor& x, double* sum, double* sumsq) {
  const Dims d = dims_of(x);
  const T* xp = x.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.C; ++c) {
    double s = 0, s2 = 0;
    for (int64_t n = 0; n < d.N; ++n) {
      const T* plane = xp + (n * d.C + c) * d.S;
      for (int64_t i = 0; i < d.S; ++i) {
        const double v = double(plane[i]);
        s += v;
        s2 += v * v;
      }
    }
    sum[c] = s;
    sumsq[c] = s2;
  }
}

template <class T>
void bn_affine_ref(const Tensor& x, const double* scale, const double* shift, Tensor& y) {
  const Dims d = dims_of(x);
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < d.N * d.C; ++nc) {
    const int64_t c = nc % d.C;
    const T a = T(scale[c]), b = T(shift[c]);
    for (int64_t i = 0; i < d.S; ++i) yp[nc * d.S + i] = xp[nc * d.S + i] * a + b;
  }
}

template <class T>
void bn_grad_sums_ref(const Tensor& dy, const Tensor& x, const double* mean, double* sum_dy, double* sum_dy_xmu) {
  const Dims d = dims_of(x);
  const T* xp = x.data<T>();
  const T* gp = dy.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.C; ++c) {
    double s = 0, sx = 0;
    for (int64_t n = 0; n < d.N; ++n) {
      const int64_t base = (n * d.C + c) * d.S;
      for (int64_t i = 0; i < d.S; ++i) {
        const double g = double(gp[base + i]);
        s += g;
        sx += g * (double(xp[base + i]) - mean[c]);
      }
    }
    sum_dy[c] = s;
    sum_dy_xmu[c] = sx;
  }
}

template <class T>
void bn_grad_input_ref(const Tensor& dy, const Tensor& x, const double* k, const double* p, const double* q, Tensor& dx) {
  const Dims d = dims_of(x);
  const T* xp = x.data<T>();
  const T* gp = dy.data<T>();
  T* op = dx.data<T>();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < d.N * d.C; ++nc) {
    const int64_t c = nc % d.C;
    const T kc = T(k[c]), pc = T(p[c]), qc = T(q[c]);
    for (int64_t i = nc * d.S; i < (nc + 1) * d.S; ++i) op[i] = kc * gp[i] + pc * xp[i] + qc;
  }
}

#define HALO_BN_INSTANTIATE(T)                                                                             \
  template void bn_channel_sums_ref<T>(const Tensor&, double*, double*);                                  \
  template void bn_affine_ref<T>(const Tensor&, const double*, const double*, Tensor&);                   \
  template void bn_grad_sums_ref<T>(const Tensor&, const Tensor&, const double*, double*, double*);       \
  template void bn_grad_input_ref<T>(const Tensor&, const Tensor&, const double*, const double*, const double*, \
                                     Tensor&);
HALO_BN_INSTANTIATE(float)
HALO_BN_INSTANTIATE(double)
#undef HALO_BN_INSTANTIATE

}  // namespace halo::kernels::cpu
