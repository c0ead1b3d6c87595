// Seeded parameter initialisers. Element i of a parameter depends only on (seed, the
// parameter's full name, i): independent of thread count, rank count and layer order.
#pragma once
#include <cmath>
#include <string>

#include "halo/tensor/tensor.hpp"
#include "halo/util/random.hpp"

namespace halo::nn::init {

enum class Scheme { kaiming_uniform, kaiming_normal, glorot_uniform, glorot_normal, zeros, ones };

/// Fills `t` (any device) following `scheme`. `gain` scales the Kaiming bound
/// (sqrt(2) for ReLU; sqrt(2/(1+a^2)) for LeakyReLU(a)).
inline void fill(Tensor& t, Scheme scheme, double fan_in, double fan_out, uint64_t seed, const std::string& name,
                 double gain = std::sqrt(2.0)) {
  Tensor h = Tensor::empty(t.shape(), DType::f64);
  double* p = h.data<double>();
  CounterRng rng(seed, hash_name(name.c_str()));
  const int64_t n = h.numel();
  switch (scheme) {
    case Scheme::zeros: h.zero_(); break;
    case Scheme::ones: h.fill_(1.0); break;
    case Scheme::kaiming_uniform: {
      double bound = gain * std::sqrt(3.0 / fan_in);
      for (int64_t i = 0; i < n; ++i) p[i] = bound * (2 * rng.uniform(uint64_t(i)) - 1);
      break;
    }
    case Scheme::kaiming_normal: {
      double sd = gain / std::sqrt(fan_in);
      for (int64_t i = 0; i < n; ++i) p[i] = sd * rng.normal(uint64_t(i));
      break;
    }
    case Scheme::glorot_uniform: {
      double bound = std::sqrt(6.0 / (fan_in + fan_out));
      for (int64_t i = 0; i < n; ++i) p[i] = bound * (2 * rng.uniform(uint64_t(i)) - 1);
      break;
    }
    case Scheme::glorot_normal: {
      double sd = std::sqrt(2.0 / (fan_in + fan_out));
      for (int64_t i = 0; i < n; ++i) p[i] = sd * rng.normal(uint64_t(i));
      break;
    }
  }
  Tensor dst = Tensor::empty(t.shape(), t.dtype(), t.device());
  dst.copy_(h);
  t.copy_(dst);
}

}  // namespace halo::nn::init
