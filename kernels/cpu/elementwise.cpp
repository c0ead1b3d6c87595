// OpenMP element-wise kernels. Each loop is one pass over memory; small arrays stay on
// one thread because waking the team costs more than the work.
#include "activation_math.hpp"
#include "cpu/elementwise.hpp"
#include "cpu/bf16_simd.hpp"

#include <cmath>

#include "halo/util/random.hpp"

namespace halo::kernels::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

template <class T>
void activation_forward(ops::Activation a, const T* x, T* y, int64_t n, T slope) {
  with_activation(a, [&](auto kind) {
    constexpr ops::Activation F = decltype(kind)::value;
    if constexpr (activation_is_transcendental<F>) {
#pragma omp parallel for if (n > kParallelMin / 8) schedule(static)
      for (int64_t i = 0; i < n; ++i) y[i] = activation_value<F>(x[i], slope);
    } else {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
      for (int64_t i = 0; i < n; ++i) y[i] = activation_value<F>(x[i], slope);
    }
  });
}

template <class T>
void activation_backward(ops::Activation a, const T* y, const T* gy, T* gx, int64_t n, T slope) {
  with_activation(a, [&](auto kind) {
    constexpr ops::Activation F = decltype(kind)::value;
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) gx[i] = activation_grad<F>(y[i], gy[i], slope);
  });
}

// bf16 activations (mixed precision): each value computed in f32 and rounded once; ReLU and
// leaky ReLU (the CNNs' activations) 16 lanes at a time.
void activation_forward_bf16(ops::Activation a, const bf16* x, bf16* y, int64_t n, float slope) {
  if (a == ops::Activation::relu || a == ops::Activation::leaky_relu) {
    const float s = a == ops::Activation::relu ? 0.0f : slope;
    map_bf16(n, x, y, [s](auto v) { return leaky(v, s); });
    return;
  }
  with_activation(a, [&](auto kind) {
    constexpr ops::Activation F = decltype(kind)::value;
#pragma omp parallel for if (n > kParallelMin / 8) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = bf16(activation_value<F>(float(x[i]), slope));
  });
}

void activation_backward_bf16(ops::Activation a, const bf16* y, const bf16* gy, bf16* gx, int64_t n, float slope) {
  if (a == ops::Activation::relu || a == ops::Activation::leaky_relu) {
    const float s = a == ops::Activation::relu ? 0.0f : slope;
    map2_bf16(n, y, gy, gx, [s](auto yv, auto gv) { return leaky_grad(yv, gv, s); });
    return;
  }
  with_activation(a, [&](auto kind) {
    constexpr ops::Activation F = decltype(kind)::value;
#pragma omp parallel for if (n > kParallelMin / 8) schedule(static)
    for (int64_t i = 0; i < n; ++i) gx[i] = bf16(activation_grad<F>(float(y[i]), float(gy[i]), slope));
  });
}

template <class T>
void axpby(int64_t n, T alpha, const T* x, T beta, T* y) {
  if (beta == T(0)) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
  } else if (beta == T(1)) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  } else {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta * y[i];
  }
}

template <class T>
void mul(int64_t n, const T* a, const T* b, T* y) {
#pragma omp parallel for simd if (n > kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

template <class T>
double sum(int64_t n, const T* x) {
  double s = 0;
#pragma omp parallel for simd if (n > kParallelMin) schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(x[i]);
  return s;
}

template <class T>
double dot(int64_t n, const T* a, const T* b) {
  double s = 0;
#pragma omp parallel for simd if (n > kParallelMin) schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

template <class T>
void dropout_mask(T* mask, int64_t outer, int64_t channels, int64_t inner, bool channels_last, double p,
                  uint64_t seed, uint64_t step) {
  const CounterRng rng(seed, step);
  const T keep = T(1.0 / (1.0 - p));
  const int64_t n = outer * channels * inner;
  if (!channels_last) {
#pragma omp parallel for if (n > kParallelMin / 4) schedule(static)
    for (int64_t i = 0; i < n; ++i) mask[i] = rng.uniform(uint64_t(i)) >= p ? keep : T(0);
    return;
  }
#pragma omp parallel for if (n > kParallelMin / 4) schedule(static)
  for (int64_t os = 0; os < outer * inner; ++os) {
    const int64_t o = os / inner, s = os % inner;
    T* m = mask + os * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const uint64_t logical = uint64_t((o * channels + c) * inner + s);
      m[c] = rng.uniform(logical) >= p ? keep : T(0);
    }
  }
}

#define HALO_INSTANTIATE(T)                                                            \
  template void activation_forward<T>(ops::Activation, const T*, T*, int64_t, T);       \
  template void activation_backward<T>(ops::Activation, const T*, const T*, T*, int64_t, T); \
  template void axpby<T>(int64_t, T, const T*, T, T*);                                  \
  template void mul<T>(int64_t, const T*, const T*, T*);                                \
  template double sum<T>(int64_t, const T*);                                            \
  template double dot<T>(int64_t, const T*, const T*);                                  \
  template void dropout_mask<T>(T*, int64_t, int64_t, int64_t, bool, double, uint64_t, uint64_t);
HALO_INSTANTIATE(float)
HALO_INSTANTIATE(double)
#undef HALO_INSTANTIATE

}  // namespace halo::kernels::cpu
