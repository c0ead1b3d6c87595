// Plain serial element-wise kernels: the definition the fast kernels are tested against.
#include <algorithm>
#include <cmath>

#include "cpu/elementwise.hpp"

namespace halo::kernels::cpu::ref {

template <class T>
void activation_forward(ops::Activation a, const T* x, T* y, int64_t n, T slope) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    switch (a) {
      case ops::Activation::none: y[i] = v; break;
      case ops::Activation::relu: y[i] = std::max(v, T(0)); break;
      case ops::Activation::leaky_relu: y[i] = v > T(0) ? v : slope * v; break;
      case ops::Activation::tanh: y[i] = std::tanh(v); break;
      case ops::Activation::sigmoid: y[i] = T(1) / (T(1) + std::exp(-v)); break;
    }
  }
}

template <class T>
void activation_backward(ops::Activation a, const T* y, const T* gy, T* gx, int64_t n, T slope) {
  for (int64_t i = 0; i < n; ++i) {
    T d = 0;
    switch (a) {
      case ops::Activation::none: d = T(1); break;
      case ops::Activation::relu: d = y[i] > T(0) ? T(1) : T(0); break;
      case ops::Activation::leaky_relu: d = y[i] > T(0) ? T(1) : slope; break;
      case ops::Activation::tanh: d = T(1) - y[i] * y[i]; break;
      case ops::Activation::sigmoid: d = y[i] * (T(1) - y[i]); break;
    }
    gx[i] = d * gy[i];
  }
}

template <class T>
void axpby(int64_t n, T alpha, const T* x, T beta, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + (beta == T(0) ? T(0) : beta * y[i]);
}

#define HALO_INSTANTIATE(T)                                                            \
  template void activation_forward<T>(ops::Activation, const T*, T*, int64_t, T);       \
  template void activation_backward<T>(ops::Activation, const T*, const T*, T*, int64_t, T); \
  template void axpby<T>(int64_t, T, const T*, T, T*);
HALO_INSTANTIATE(float)
HALO_INSTANTIATE(double)
#undef HALO_INSTANTIATE

}  // namespace halo::kernels::cpu::ref
