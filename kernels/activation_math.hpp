// The activations' math, written once for every backend: the CPU kernels call these inline
// functions in their loops, the CUDA kernels on the device (HALO_HOST_DEVICE). Adding an
// activation: its entry in HALO_ACTIVATIONS (halo/ops/activation.hpp), its value and gradient
// here, and a layer in halo/nn/activation.hpp; the kernels of every backend follow.
#pragma once
#include <math.h>

#include <type_traits>

#include "halo/ops/activation.hpp"

#if defined(__CUDACC__)
#define HALO_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HALO_HOST_DEVICE inline
#endif

namespace halo::kernels {

template <ops::Activation F>
using ActivationTag = std::integral_constant<ops::Activation, F>;

// The C functions, which host and device code both have, in the precision of the argument.
HALO_HOST_DEVICE float math_exp(float x) { return ::expf(x); }
HALO_HOST_DEVICE double math_exp(double x) { return ::exp(x); }
HALO_HOST_DEVICE float math_tanh(float x) { return ::tanhf(x); }
HALO_HOST_DEVICE double math_tanh(double x) { return ::tanh(x); }

/// f(x); `slope` is the negative-side slope of leaky_relu (unused by the others).
template <ops::Activation F, class T>
HALO_HOST_DEVICE T activation_value(T x, T slope) {
  using A = ops::Activation;
  if constexpr (F == A::relu) return x > T(0) ? x : T(0);
  if constexpr (F == A::leaky_relu) return x > T(0) ? x : slope * x;
  if constexpr (F == A::tanh) return math_tanh(x);
  // exp(-x) overflows to inf for very negative x, giving exactly 0: no NaN either way.
  if constexpr (F == A::sigmoid) return T(1) / (T(1) + math_exp(-x));
  return x;  // none
}

/// dL/dx from dL/dy `gy` and the activation's output y (every derivative here is a function
/// of the output: relu and leaky_relu with slope >= 0 keep the input's sign, tanh' = 1 - y^2,
/// sigmoid' = y (1 - y)). For relu and leaky_relu the input x may stand in for y.
template <ops::Activation F, class T>
HALO_HOST_DEVICE T activation_grad(T y, T gy, T slope) {
  using A = ops::Activation;
  if constexpr (F == A::relu) return y > T(0) ? gy : T(0);
  if constexpr (F == A::leaky_relu) return y > T(0) ? gy : slope * gy;
  if constexpr (F == A::tanh) return gy * (T(1) - y * y);
  if constexpr (F == A::sigmoid) return gy * y * (T(1) - y);
  return gy;  // none
}

/// Whether f costs a transcendental function per element: the CPU kernels split such loops
/// across threads at smaller sizes and do not ask for vector code.
template <ops::Activation F>
constexpr bool activation_is_transcendental = F == ops::Activation::tanh || F == ops::Activation::sigmoid;

/// Calls body(ActivationTag<F>{}) for F = a: the run-time kind becomes a compile-time one
/// once per call, outside any loop.
template <class Body>
decltype(auto) with_activation(ops::Activation a, Body&& body) {
  switch (a) {
#define HALO_ACTIVATION_CASE(n) \
  case ops::Activation::n:      \
    return body(ActivationTag<ops::Activation::n>{});
    HALO_ACTIVATIONS(HALO_ACTIVATION_CASE)
#undef HALO_ACTIVATION_CASE
  }
  return body(ActivationTag<ops::Activation::none>{});  // not reached: every kind has a case
}

}  // namespace halo::kernels
