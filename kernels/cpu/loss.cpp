#include "cpu/loss.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace halo::kernels::cpu {

template <class T>
double sum_error(int64_t n, const T* p, const T* t, bool squared) {
  double s = 0;
#pragma omp parallel for if (n > (1 << 15)) schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(p[i]) - double(t[i]);
    s += squared ? d * d : std::abs(d);
  }
  return s;
}

template <class T>
void error_grad(int64_t n, const T* p, const T* t, T* g, double scale, bool squared) {
#pragma omp parallel for if (n > (1 << 15)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(p[i]) - double(t[i]);
    g[i] = T(squared ? scale * d : scale * double((d > 0) - (d < 0)));
  }
}

template <class T, class L>
int64_t cross_entropy(const CeLayout& lay, const T* logits, const L* labels, const double* weights,
                      int64_t ignore_index, double* loss_sum, double* weight_sum, T* grad, double scale) {
  const int64_t K = lay.classes, S = lay.spatial, pixels = lay.batch * S;
  const int64_t cstride = lay.channels_last ? 1 : S;
  double ls = 0, ws = 0;
  int64_t bad = std::numeric_limits<int64_t>::max();
#pragma omp parallel for if (pixels * K > (1 << 14)) schedule(static) reduction(+ : ls, ws) reduction(min : bad)
  for (int64_t p = 0; p < pixels; ++p) {
    const int64_t n = p / S, s = p % S;
    const int64_t base = lay.channels_last ? p * K : n * K * S + s;
    const T* x = logits + base;
    const int64_t y = int64_t(labels[p]);
    if (y == ignore_index) {
      if (grad)
        for (int64_t k = 0; k < K; ++k) grad[base + k * cstride] = T(0);
      continue;
    }
    if (y < 0 || y >= K) {
      bad = std::min(bad, p);
      continue;
    }
    // log-softmax with the maximum subtracted: exp never overflows, the sum is >= 1.
    double mx = double(x[0]);
    for (int64_t k = 1; k < K; ++k) mx = std::max(mx, double(x[k * cstride]));
    double z = 0;
    for (int64_t k = 0; k < K; ++k) z += std::exp(double(x[k * cstride]) - mx);
    const double log_z = std::log(z);
    const double w = weights ? weights[y] : 1.0;
    ls += w * (log_z - (double(x[y * cstride]) - mx));
    ws += w;
    if (grad) {
      const double f = scale * w;
      for (int64_t k = 0; k < K; ++k) {
        const double prob = std::exp(double(x[k * cstride]) - mx - log_z);
        grad[base + k * cstride] = T(f * (prob - (k == y ? 1.0 : 0.0)));
      }
    }
  }
  *loss_sum = ls;
  *weight_sum = ws;
  return bad == std::numeric_limits<int64_t>::max() ? -1 : bad;
}

template double sum_error<float>(int64_t, const float*, const float*, bool);
template double sum_error<double>(int64_t, const double*, const double*, bool);
template void error_grad<float>(int64_t, const float*, const float*, float*, double, bool);
template void error_grad<double>(int64_t, const double*, const double*, double*, double, bool);
#define HALO_INSTANTIATE(T, L)                                                                              \
  template int64_t cross_entropy<T, L>(const CeLayout&, const T*, const L*, const double*, int64_t, double*, \
                                       double*, T*, double);
HALO_INSTANTIATE(float, int32_t)
HALO_INSTANTIATE(float, int64_t)
HALO_INSTANTIATE(double, int32_t)
HALO_INSTANTIATE(double, int64_t)
#undef HALO_INSTANTIATE

}  // namespace halo::kernels::cpu
