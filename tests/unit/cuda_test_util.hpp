// Shared helpers of the GPU-against-CPU tests (tests/unit/test_*_cuda.cpp): random inputs,
// relative errors over logical order, and tolerances by precision.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "halo/nn/model.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo_cuda_test {

using namespace halo;

inline const Device gpu = Device::cuda(0);

inline Tensor random_tensor(const Shape& s, uint32_t seed, MemoryFormat fmt = MemoryFormat::contiguous,
                            float mean = 0.f, float sd = 1.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(mean, sd);
  std::vector<float> v(size_t(numel(s)));
  for (auto& x : v) x = nd(rng);
  return Tensor::from_vector(v, s).to_memory_format(fmt);
}

/// ||a - b|| / ||b|| over the values in logical order (a may be on the GPU, in any dtype).
inline double rel_err(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  REQUIRE(va.size() == vb.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    REQUIRE(std::isfinite(va[i]));
    num += (va[i] - vb[i]) * (va[i] - vb[i]);
    den += vb[i] * vb[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

/// t in dtype dt on the GPU, keeping its layout.
inline Tensor on_gpu(const Tensor& t, DType dt) { return t.to(dt).to(gpu); }
/// The values the GPU sees: t rounded to dt, back in f32 on the CPU.
inline Tensor rounded(const Tensor& t, DType dt) { return t.to(dt).to(DType::f32); }
/// Bound for results written in dt (bf16 rounds each output to 8 significant bits).
/// Labels 0..K-1 drawn uniformly, with about one in K+1 set to `ignore_index`.
template <class L>
inline Tensor random_labels(const Shape& s, int64_t K, uint32_t seed, int64_t ignore_index) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, K);  // K stands for "ignored"
  std::vector<L> v(size_t(numel(s)));
  for (auto& l : v) {
    const int64_t k = pick(rng);
    l = L(k == K ? ignore_index : k);
  }
  return Tensor::from_vector(v, s);
}

inline double tol(DType dt) { return dt == DType::bf16 ? 2e-2 : 1e-5; }

/// Every parameter of `got` within `tol` (rel_err) of the same-named one of `want`: two models
/// trained the same way (eagerly and as a graph, say).
inline void check_same_parameters(nn::Model& got, nn::Model& want, double tol) {
  const auto pg = got.parameters(), pw = want.parameters();
  REQUIRE(pg.size() == pw.size());
  for (size_t i = 0; i < pw.size(); ++i) {
    INFO(pw[i]->name);
    CHECK(rel_err(pg[i]->value, pw[i]->value) < tol);
  }
}

}  // namespace halo_cuda_test
