// Plain serial element-wise kernels: the definition the fast kernels are tested against.
#include <algorithm>
#include <cmath>

#include "activation_math.hpp"
#include "cpu/elementwise.hpp"

namespace halo::kernels::cpu::ref {

// The activations' math is kernels/activation_math.hpp, shared with the fast kernels and
// the GPU; what the reference adds is the plain serial loop (f64 gradient checks run here).
template <class T>
void activation_forward(ops::Activation a, const T* x, T* y, int64_t n, T slope) {
  with_activation(a, [&](auto kind) {
    for (int64_t i = 0; i < n; ++i) y[i] = activation_value<decltype(kind)::value>(x[i], slope);
  });
}

template <class T>
void activation_backward(ops::Activation a, const T* y, const T* gy, T* gx, int64_t n, T slope) {
  with_activation(a, [&](auto kind) {
    for (int64_t i = 0; i < n; ++i) gx[i] = activation_grad<decltype(kind)::value>(y[i], gy[i], slope);
  });
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
