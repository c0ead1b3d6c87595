#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include "gradcheck.hpp"
#include "halo/nn/losses.hpp"

using namespace halo;
using testing::max_abs_diff;
using testing::random_tensor;

namespace {

/// Compares loss.backward() with central differences of loss.forward() at every element
/// (or an even spread of up to 300) of an f64 prediction.
void check_loss_gradient(nn::Loss& loss, const Tensor& prediction, const Tensor& target) {
  Tensor p = prediction.contiguous().clone();
  loss.forward(p, target);
  auto analytic = loss.backward().to_vector<double>();
  const double eps = 1e-6;
  const int64_t n = p.numel(), step = std::max<int64_t>(1, n / 300);
  int failures = 0;
  for (int64_t i = 0; i < n; i += step) {
    testing::bump(p, i, eps);
    const double lp = loss.forward(p, target);
    testing::bump(p, i, -2 * eps);
    const double lm = loss.forward(p, target);
    testing::bump(p, i, eps);
    const double num = (lp - lm) / (2 * eps);
    if (std::abs(analytic[size_t(i)] - num) > 1e-7 + 1e-5 * std::abs(num)) {
      if (failures++ < 5) INFO(loss.type() << "[" << i << "]: analytic " << analytic[size_t(i)] << " numeric " << num);
      CHECK(false);
    }
  }
  INFO(loss.type() << " on " << p.str() << ": " << failures << " element(s) out of tolerance");
  CHECK(failures == 0);
}

/// Labels in [0, K) with some set to `ignore`, as an i64 or i32 tensor.
Tensor random_labels(const Shape& shape, int64_t K, uint64_t seed, int64_t ignore, DType dt) {
  CounterRng rng(seed);
  std::vector<int64_t> v(size_t(numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = rng.uniform(i) < 0.15 ? ignore : int64_t(rng.uniform(i + 1000003) * double(K));
  return Tensor::from_vector<int64_t>(v, shape).to(dt);
}

}  // namespace

TEST_CASE("MSE and L1 on hand-computed values") {
  Tensor p = Tensor::from_vector<double>({1, 2, 3, 4}, {2, 2});
  Tensor t = Tensor::from_vector<double>({0, 2, 5, 3}, {2, 2});
  nn::MSELoss mse;
  CHECK(mse.forward(p, t) == Approx((1 + 0 + 4 + 1) / 4.0));
  CHECK(mse.backward().to_vector<double>() == std::vector<double>{0.5, 0, -1, 0.5});
  nn::L1Loss l1;
  CHECK(l1.forward(p, t) == Approx((1 + 0 + 2 + 1) / 4.0));
  CHECK(l1.backward().to_vector<double>() == std::vector<double>{0.25, 0, -0.25, 0.25});
  CHECK_THROWS_WITH(mse.forward(p, Tensor::zeros({4}, DType::f64)), Catch::Contains("[2,2]") && Catch::Contains("[4]"));
}

TEST_CASE("MSE and L1 gradients match finite differences") {
  for (Shape s : {Shape{1, 1}, Shape{4, 3}, Shape{2, 3, 4, 5}}) {
    nn::MSELoss mse;
    nn::L1Loss l1;
    check_loss_gradient(mse, random_tensor(s, 1), random_tensor(s, 2));
    check_loss_gradient(l1, random_tensor(s, 3), random_tensor(s, 4));  // |p - t| > eps almost surely
  }
}

TEST_CASE("gradient() is forward() then backward(), without forward for MSE and L1") {
  // What a step captured as a CUDA graph calls (no loss value read back): the same gradient.
  const Tensor p = random_tensor({3, 4}, 5), t = random_tensor({3, 4}, 6);
  nn::MSELoss mse, mse_ref;
  nn::L1Loss l1, l1_ref;
  mse_ref.forward(p, t);
  l1_ref.forward(p, t);
  CHECK(max_abs_diff(mse.gradient(p, t), mse_ref.backward()) == 0.0);
  CHECK(max_abs_diff(l1.gradient(p, t), l1_ref.backward()) == 0.0);
  CHECK(max_abs_diff(mse.backward(), mse_ref.backward()) == 0.0);  // and backward() works after it
  nn::WeightedCrossEntropy ce({1.0, 2.0, 3.0}), ce_ref({1.0, 2.0, 3.0});
  const Tensor logits = random_tensor({2, 3, 4}, 7);
  const Tensor labels = random_labels({2, 4}, 3, 8, -100, DType::i64);
  ce_ref.forward(logits, labels);
  CHECK(max_abs_diff(ce.gradient(logits, labels), ce_ref.backward()) == 0.0);  // the default path
}

TEST_CASE("cross entropy: hand-computed weighted mean with an ignored pixel") {
  // 3 pixels of (N=1, K=2, H=1, W=3): logits (0, 0), (2, 0), (0, 1); labels 0, 1, ignored.
  Tensor logits = Tensor::from_vector<double>({0, 2, 0, 0, 0, 1}, {1, 2, 1, 3});
  Tensor labels = Tensor::from_vector<int32_t>({0, 1, -1}, {1, 1, 3});
  nn::WeightedCrossEntropy ce({1.0, 3.0}, -1);
  const double l0 = std::log(2.0);
  const double l1 = std::log(std::exp(2.0) + 1.0);  // -log(e^0 / (e^2 + e^0))
  CHECK(ce.forward(logits, labels) == Approx((1.0 * l0 + 3.0 * l1) / 4.0));
  CHECK(ce.last_sums().weight == 4.0);
  auto g = ce.backward().to_vector<double>();
  // ignored pixel (w = 2) has no gradient in either class
  CHECK(g[2] == 0.0);
  CHECK(g[5] == 0.0);
  CHECK(g[0] == Approx(1.0 * (0.5 - 1) / 4));
  // unweighted equals the plain mean
  nn::WeightedCrossEntropy plain({}, -1);
  CHECK(plain.forward(logits, labels) == Approx((l0 + l1) / 2));
  // all ignored: loss and gradient zero, no NaN
  nn::WeightedCrossEntropy none({}, 0);
  CHECK(none.forward(Tensor::zeros({2, 3}, DType::f64), Tensor::from_vector<int64_t>({0, 0}, {2})) == 0.0);
  CHECK(testing::max_abs(none.backward()) == 0.0);
}

TEST_CASE("cross entropy is stable for huge logits") {
  Tensor logits = Tensor::from_vector<float>({1000.f, -1000.f, 0.f, 1000.f}, {2, 2});
  Tensor labels = Tensor::from_vector<int64_t>({0, 0}, {2});
  nn::WeightedCrossEntropy ce;
  const double v = ce.forward(logits, labels);
  CHECK(std::isfinite(v));
  CHECK(v == Approx(1000.0 / 2));
  for (float g : ce.backward().to_vector<float>()) CHECK(std::isfinite(g));
}

TEST_CASE("cross entropy gradients match finite differences (weights, ignore, i32/i64, 2-D and 4-D)") {
  struct Case {
    Shape logits;
    std::vector<double> weights;
    DType label_type;
  };
  for (const Case& c : {Case{{5, 4}, {}, DType::i64}, Case{{2, 3, 4, 5}, {0.2, 1.0, 5.0}, DType::i32},
                        Case{{1, 2, 3, 3}, {1.0, 2.0}, DType::i64}}) {
    Shape lshape = c.logits;
    lshape.erase(lshape.begin() + 1);
    Tensor labels = random_labels(lshape, c.logits[1], 11, -100, c.label_type);
    nn::WeightedCrossEntropy ce(c.weights);
    check_loss_gradient(ce, random_tensor(c.logits, 12, DType::f64, -3, 3), labels);
  }
}

TEST_CASE("cross entropy on channels-last logits equals the contiguous result") {
  Tensor logits = random_tensor({2, 3, 6, 7}, 21, DType::f32, -4, 4);
  Tensor labels = random_labels({2, 6, 7}, 3, 22, 255, DType::i64);
  nn::WeightedCrossEntropy ce({1.0, 2.0, 0.5}, 255);
  const double a = ce.forward(logits, labels);
  Tensor ga = ce.backward();
  const double b = ce.forward(logits.to_memory_format(MemoryFormat::channels_last), labels);
  Tensor gb = ce.backward();
  CHECK(a == Approx(b).epsilon(1e-12));
  CHECK(gb.memory_format() == MemoryFormat::channels_last);
  CHECK(max_abs_diff(ga, gb) <= 1e-7);
}

TEST_CASE("cross entropy errors say what is wrong") {
  nn::WeightedCrossEntropy ce;
  Tensor logits = Tensor::zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH(ce.forward(logits, Tensor::zeros({2, 4, 5}, DType::i64)),
                    Catch::Contains("[2,4,5]") && Catch::Contains("[2,4,4]"));
  CHECK_THROWS_WITH(ce.forward(logits, Tensor::zeros({2, 4, 4}, DType::f32)), Catch::Contains("i32 or i64"));
  Tensor bad = Tensor::zeros({2, 4, 4}, DType::i64);
  bad.data<int64_t>()[5] = 3;
  CHECK_THROWS_WITH(ce.forward(logits, bad), Catch::Contains("label 3 at flat position 5"));
  nn::WeightedCrossEntropy two({1.0, 1.0});
  CHECK_THROWS_WITH(two.forward(logits, Tensor::zeros({2, 4, 4}, DType::i64)), Catch::Contains("2 class weights for 3"));
}
