#include "cpu/optim.hpp"

#include <cmath>

namespace halo::kernels::cpu {

namespace {
// Below this many elements the OpenMP fork costs more than the loop.
constexpr int64_t kParallelMin = 16384;

// Adam's normalised step m_hat / (sqrt(v_hat) + eps) for one element.
template <class T>
inline T adam_direction(T m, T v, T inv_bias1, T inv_bias2, T eps) {
  return (m * inv_bias1) / (std::sqrt(v * inv_bias2) + eps);
}
}  // namespace

template <class T>
void sgd_update(T* w, const T* g, T* buf, int64_t n, const optim::SgdStep& s) {
  const T lr = T(s.lr), mu = T(s.momentum), wd = T(s.weight_decay);
  const bool nesterov = s.nesterov;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i] + wd * w[i];
    if (buf) {
      buf[i] = mu * buf[i] + d;
      d = nesterov ? d + mu * buf[i] : buf[i];
    }
    w[i] -= lr * d;
  }
}

template <class T>
void adam_update(T* w, const T* g, T* m, T* v, int64_t n, const optim::AdamStep& s) {
  const T lr = T(s.lr), b1 = T(s.beta1), b2 = T(s.beta2), eps = T(s.eps);
  const T ib1 = T(1.0 / s.bias1), ib2 = T(1.0 / s.bias2);
  const T l2 = s.decoupled ? T(0) : T(s.weight_decay);
  const T shrink = s.decoupled ? T(1.0 - s.lr * s.weight_decay) : T(1);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i] + l2 * w[i];
    m[i] = b1 * m[i] + (1 - b1) * gi;
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    w[i] = shrink * w[i] - lr * adam_direction(m[i], v[i], ib1, ib2, eps);
  }
}

template <class T>
double lamb_update(T* w, const T* g, T* m, T* v, int64_t n, const optim::LambStep& s) {
  const T b1 = T(s.beta1), b2 = T(s.beta2), eps = T(s.eps), wd = T(s.weight_decay);
  const T ib1 = T(1.0 / s.bias1), ib2 = T(1.0 / s.bias2);
  // Pass 1: moments, and the norms of w and of the update (recomputed in pass 2 rather
  // than stored, to need no temporary as large as the parameter).
  double w2 = 0, u2 = 0;
#pragma omp parallel for schedule(static) reduction(+ : w2, u2) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    const T u = adam_direction(m[i], v[i], ib1, ib2, eps) + wd * w[i];
    w2 += double(w[i]) * double(w[i]);
    u2 += double(u) * double(u);
  }
  const double wn = std::sqrt(w2), un = std::sqrt(u2);
  double trust = (wn > 0 && un > 0) ? wn / un : 1.0;
  if (s.max_trust > 0 && trust > s.max_trust) trust = s.max_trust;
  const T step = T(s.lr * trust);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) w[i] -= step * (adam_direction(m[i], v[i], ib1, ib2, eps) + wd * w[i]);
  return trust;
}

template <class T>
double lars_update(T* w, const T* g, T* v, int64_t n, const optim::LarsStep& s) {
  const T wd = s.adapt ? T(s.weight_decay) : T(0), mu = T(s.momentum);
  double local = 1.0;
  if (s.adapt) {
    double w2 = 0, g2 = 0;
#pragma omp parallel for schedule(static) reduction(+ : w2, g2) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      w2 += double(w[i]) * double(w[i]);
      g2 += double(g[i]) * double(g[i]);
    }
    const double wn = std::sqrt(w2), gn = std::sqrt(g2);
    if (wn > 0 && gn > 0) local = s.trust_coefficient * wn / (gn + s.weight_decay * wn + s.eps);
  }
  const T scaled_lr = T(s.lr * local);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    v[i] = mu * v[i] + scaled_lr * (g[i] + wd * w[i]);
    w[i] -= v[i];
  }
  return local;
}

template <class T>
double sum_squares(const T* x, int64_t n) {
  double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  return s;
}

template <class T>
void scale(T* x, int64_t n, double factor) {
  const T f = T(factor);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) x[i] *= f;
}

#define HALO_OPTIM_INSTANTIATE(T)                                                                  \
  template void sgd_update<T>(T*, const T*, T*, int64_t, const optim::SgdStep&);                   \
  template void adam_update<T>(T*, const T*, T*, T*, int64_t, const optim::AdamStep&);             \
  template double lamb_update<T>(T*, const T*, T*, T*, int64_t, const optim::LambStep&);           \
  template double lars_update<T>(T*, const T*, T*, int64_t, const optim::LarsStep&);               \
  template double sum_squares<T>(const T*, int64_t);                                               \
  template void scale<T>(T*, int64_t, double);
HALO_OPTIM_INSTANTIATE(float)
HALO_OPTIM_INSTANTIATE(double)
#undef HALO_OPTIM_INSTANTIATE

}  // namespace halo::kernels::cpu
