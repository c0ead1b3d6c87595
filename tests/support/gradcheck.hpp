// Finite-difference gradient checks in double precision.
//
// For a layer f and a fixed random projection R, the scalar L = sum(f(x) * R) has
// dL/dx = backward(R). Each checked element is perturbed by ±eps and the central
// difference compared with the analytic value: |a - n| <= atol + rtol * |n|.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "halo/nn/layer.hpp"
#include "halo/util/random.hpp"

namespace halo::testing {

/// A tensor of uniform values in [lo, hi), reproducible from the seed.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, DType dt = DType::f64, double lo = -1.0,
                            double hi = 1.0) {
  Tensor t = Tensor::empty(shape, DType::f64);
  CounterRng rng(seed);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = lo + (hi - lo) * rng.uniform(uint64_t(i));
  return t.to(dt);
}

inline double dot_all(const Tensor& a, const Tensor& b) {
  auto va = a.to_vector<double>();
  auto vb = b.to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double s = 0;
  for (size_t i = 0; i < va.size(); ++i) s += va[i] * vb[i];
  return s;
}

struct GradCheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  /// Check at most this many elements per tensor (spread evenly), to keep tests fast.
  int64_t max_elements = 200;
  bool check_inputs = true;
  bool check_params = true;
};

/// Perturbs element i of `t` (a dense f64 CPU tensor) by delta.
inline void bump(Tensor& t, int64_t i, double delta) { t.data<double>()[i] += delta; }

/// Checks every input (where input_needs_grad) and every parameter of `layer`.
/// `loss_of` may be given to replace the default projection loss (e.g. for losses).
inline void check_layer_gradients(nn::Layer& layer, std::vector<Tensor> inputs, const GradCheckOptions& o = {},
                                  uint64_t seed = 7) {
  for (auto& x : inputs) x = x.contiguous();
  Tensor y = layer.forward(inputs);
  Tensor R = random_tensor(y.shape(), seed + 1000);
  if (y.is_channels_last() && !y.is_contiguous()) R = R.to_memory_format(MemoryFormat::channels_last);
  for (auto& p : layer.parameters()) p.grad.zero_();
  std::vector<Tensor> gx = layer.backward(R);
  REQUIRE(gx.size() == inputs.size());

  auto loss = [&]() { return dot_all(layer.forward(inputs), R); };
  auto check = [&](Tensor& t, const Tensor& analytic, const std::string& what) {
    REQUIRE(analytic.defined());
    REQUIRE(analytic.shape() == t.shape());
    auto a = analytic.to_vector<double>();
    const int64_t n = t.numel();
    const int64_t step = std::max<int64_t>(1, n / o.max_elements);
    int failures = 0;
    for (int64_t i = 0; i < n; i += step) {
      // t is contiguous, so flat index i is logical index i.
      bump(t, i, o.eps);
      double lp = loss();
      bump(t, i, -2 * o.eps);
      double lm = loss();
      bump(t, i, o.eps);
      double num = (lp - lm) / (2 * o.eps);
      double err = std::abs(a[size_t(i)] - num);
      if (err > o.atol + o.rtol * std::abs(num) && failures++ < 5) {
        INFO(layer.describe() << " " << what << "[" << i << "]: analytic " << a[size_t(i)] << " numeric " << num);
        CHECK(err <= o.atol + o.rtol * std::abs(num));
      }
    }
    INFO(layer.describe() << " " << what << ": " << failures << " element(s) out of tolerance");
    CHECK(failures == 0);
  };
  if (o.check_inputs)
    for (size_t k = 0; k < inputs.size(); ++k)
      if (layer.input_needs_grad(k)) check(inputs[k], gx[k], "input " + std::to_string(k));
  if (o.check_params)
    for (auto& p : layer.parameters()) {
      REQUIRE(p.value.is_contiguous());
      Tensor g = p.grad.clone();
      check(p.value, g, "parameter " + p.name);
    }
}

/// Largest absolute difference between two tensors of the same shape (any dtype/layout).
inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  auto va = a.to_vector<double>();
  auto vb = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]));
  return m;
}

/// Largest absolute value (for relative comparisons).
inline double max_abs(const Tensor& a) {
  double m = 0;
  for (double v : a.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

}  // namespace halo::testing
