// CUDA element-wise kernels and cuBLAS GEMM against plain CPU computations on random inputs.
// Bounds: f32 results agree to 1e-6 relative (the same float operations, in another
// order at most); bf16 results to 1e-2 relative (8-bit mantissa, rounding the output).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "../../kernels/cuda/elementwise.hpp"
#include "../../kernels/cuda/gemm.hpp"
#include "gpu_test_skip.hpp"
#include "halo/tensor/tensor.hpp"

using namespace halo;
using cuda::Activation;

namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 2.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// max |a - b| / max(1, |b|) over all elements
double max_rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(std::isfinite(a[i]));
    e = std::max(e, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  }
  return e;
}

double act_ref(Activation f, double x, double alpha) {
  switch (f) {
    case Activation::none: return x;
    case Activation::relu: return x > 0 ? x : 0;
    case Activation::leaky_relu: return x > 0 ? x : alpha * x;
    case Activation::tanh: return std::tanh(x);
    case Activation::sigmoid: return 1 / (1 + std::exp(-x));
  }
  return 0;
}
// relu and leaky_relu from the forward input x, tanh and sigmoid from the forward output y.
double act_grad_ref(Activation f, double x, double y, double alpha) {
  switch (f) {
    case Activation::none: return 1;
    case Activation::relu: return x > 0 ? 1 : 0;
    case Activation::leaky_relu: return x > 0 ? 1 : alpha;
    case Activation::tanh: return 1 - y * y;
    case Activation::sigmoid: return y * (1 - y);
  }
  return 0;
}

}  // namespace

TEST_CASE("cuda activations forward and backward match the CPU on random inputs") {
  const Shape s{3, 5, 7, 11, 13};  // odd sizes: no multiple of the block size
  const size_t n = size_t(numel(s));
  const float alpha = 0.3f;
  uint32_t seed = 10;
  for (DType dt : {DType::f32, DType::bf16}) {
    const double tol = dt == DType::f32 ? 1e-6 : 1e-2;
    for (Activation f : {Activation::relu, Activation::leaky_relu, Activation::tanh, Activation::sigmoid}) {
      INFO("dtype " << name(dt) << " activation " << int(f));
      Tensor xh = Tensor::from_vector(random_values(n, seed++), s).to(dt).to_memory_format(MemoryFormat::channels_last);
      Tensor dyh = Tensor::from_vector(random_values(n, seed++), s).to(dt).to_memory_format(MemoryFormat::channels_last);
      const std::vector<double> x = xh.to_vector<double>(), dy = dyh.to_vector<double>();
      Tensor xd = xh.to(Device::cuda()), dyd = dyh.to(Device::cuda());
      Tensor yd = Tensor::empty_like(xd);
      cuda::fill(yd, std::nanf(""));  // every element must be written
      cuda::activation_forward(f, xd, yd, alpha);
      CHECK(yd.is_channels_last());
      std::vector<double> y_ref(n), dx_ref(n);
      const std::vector<double> y = yd.to_vector<double>();
      for (size_t i = 0; i < n; ++i) {
        y_ref[i] = act_ref(f, x[i], alpha);
        dx_ref[i] = dy[i] * act_grad_ref(f, x[i], y[i], alpha);
      }
      CHECK(max_rel_err(y, y_ref) < tol);
      Tensor dxd = Tensor::empty_like(xd);
      cuda::fill(dxd, std::nanf(""));
      cuda::activation_backward(f, xd, yd, dyd, dxd, alpha);
      CHECK(max_rel_err(dxd.to_vector<double>(), dx_ref) < tol);
    }
  }
}

TEST_CASE("cuda scale, axpy and fill match the CPU") {
  const int64_t n = 100003;
  auto xv = random_values(size_t(n), 1), yv = random_values(size_t(n), 2);
  for (DType dt : {DType::f32, DType::bf16}) {
    const double tol = dt == DType::f32 ? 1e-6 : 1e-2;
    Tensor xh = Tensor::from_vector(xv, {n}).to(dt), yh = Tensor::from_vector(yv, {n}).to(dt);
    const auto x = xh.to_vector<double>(), y = yh.to_vector<double>();
    Tensor xd = xh.to(Device::cuda()), yd = yh.to(Device::cuda());
    cuda::axpy(-0.75f, xd, yd);
    std::vector<double> ref(static_cast<size_t>(n));
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = y[i] - 0.75 * x[i];
    CHECK(max_rel_err(yd.to_vector<double>(), ref) < tol);
    cuda::scale(xd, 1.5f);
    for (size_t i = 0; i < ref.size(); ++i) ref[i] = 1.5 * x[i];
    CHECK(max_rel_err(xd.to_vector<double>(), ref) < tol);
    cuda::fill(xd, 0.375f);
    CHECK(max_rel_err(xd.to_vector<double>(), std::vector<double>(size_t(n), 0.375)) == 0);
  }
  Tensor i32 = Tensor::zeros({4}, DType::i32, Device::cuda());
  CHECK_THROWS_AS(cuda::fill(i32, 1.f), ShapeError);
}

TEST_CASE("cuBLAS GEMM matches a double-precision CPU product for every transpose") {
  const int64_t m = 37, n = 53, k = 129;
  uint32_t seed = 100;
  for (DType dt : {DType::f32, DType::bf16}) {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        INFO("dtype " << name(dt) << " trans_a " << ta << " trans_b " << tb);
        Shape sa = ta ? Shape{k, m} : Shape{m, k};
        Shape sb = tb ? Shape{n, k} : Shape{k, n};
        Tensor ah = Tensor::from_vector(random_values(size_t(m * k), seed++, 1.f), sa).to(dt);
        Tensor bh = Tensor::from_vector(random_values(size_t(k * n), seed++, 1.f), sb).to(dt);
        Tensor ch = Tensor::from_vector(random_values(size_t(m * n), seed++, 1.f), {m, n}).to(dt);
        const auto a = ah.to_vector<double>(), b = bh.to_vector<double>(), c0 = ch.to_vector<double>();
        Tensor cd = ch.to(Device::cuda());
        cuda::gemm(ta, tb, 0.5f, ah.to(Device::cuda()), bh.to(Device::cuda()), 2.f, cd);
        std::vector<double> ref(size_t(m * n));
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t p = 0; p < k; ++p)
              s += a[size_t(ta ? p * m + i : i * k + p)] * b[size_t(tb ? j * k + p : p * n + j)];
            ref[size_t(i * n + j)] = 0.5 * s + 2.0 * c0[size_t(i * n + j)];
          }
        // Sums of 129 products of unit normals: f32 rounding stays far below 1e-4.
        CHECK(max_rel_err(cd.to_vector<double>(), ref) < (dt == DType::f32 ? 1e-4 : 2e-2));
      }
  }
  Tensor a = Tensor::zeros({4, 5}, DType::f32, Device::cuda()), b = Tensor::zeros({6, 7}, DType::f32, Device::cuda());
  Tensor c = Tensor::zeros({4, 7}, DType::f32, Device::cuda());
  CHECK_THROWS_AS(cuda::gemm(false, false, 1.f, a, b, 0.f, c), ShapeError);
}
