// Dynamic loss scaling on CPU tensors with real model steps: the scaled f32 run must follow
// an unscaled f64 run of the same model, overflowing steps must be skipped without touching
// parameters or optimizer state while S halves, and S must double after growth_interval
// clean steps.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "halo/nn/activation.hpp"
#include "halo/nn/linear.hpp"
#include "halo/nn/losses.hpp"
#include "halo/nn/model.hpp"
#include "halo/optim/loss_scaler.hpp"
#include "halo/optim/sgd.hpp"

using namespace halo;
using halo::optim::DynamicLossScaler;
using halo::optim::LossScalerOptions;

namespace {

// x[6] -> Linear(6, 5) -> Tanh -> Linear(5, 3): small enough to run many steps, deep enough
// that the scale passes through an activation's backward.
struct Net {
  nn::Model m;
  explicit Net(DType dt) {
    m.input({6}, "x");
    m.append(std::make_shared<nn::Linear>(6, 5, true, dt), "fc1");
    m.append(std::make_shared<nn::Tanh>(), "act");
    m.append(std::make_shared<nn::Linear>(5, 3, true, dt), "fc2");
    m.compile();
    m.init(7);
  }
  void copy_from(Net& other) {
    auto mine = m.parameters(), theirs = other.m.parameters();
    for (size_t k = 0; k < mine.size(); ++k) mine[k]->value.copy_(theirs[k]->value.to(mine[k]->value.dtype()));
  }
  std::vector<double> values() {
    std::vector<double> v;
    for (nn::Parameter* p : m.parameters()) {
      Tensor d = p->value.to(DType::f64);
      for (int64_t i = 0; i < d.numel(); ++i) v.push_back(d.data<double>()[i]);
    }
    return v;
  }
};

Tensor batch(int step, int64_t rows, int64_t cols, double offset, DType dt) {
  std::vector<double> v(size_t(rows * cols));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * double(i) + 1.3 * step + offset);
  return Tensor::from_vector<double>(v, {rows, cols}).to(dt);
}

// One forward/backward of `net` on step `s`'s batch; the loss gradient is multiplied by
// `scaler`'s S when a scaler is given.
void backward(Net& net, int s, DType dt, DynamicLossScaler* scaler) {
  nn::MSELoss loss;
  net.m.zero_grad();
  Tensor y = net.m.forward(batch(s, 4, 6, 0.0, dt));
  loss.forward(y, batch(s, 4, 3, 2.0, dt));
  Tensor dy = loss.backward();
  net.m.backward(scaler ? scaler->scale_loss_grad(dy) : dy);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}

}  // namespace

TEST_CASE("loss scaler: scaled f32 training follows unscaled f64 training; S doubles after clean steps",
          "[loss_scaler]") {
  Net ref(DType::f64), net(DType::f32);
  ref.copy_from(net);
  optim::SGD ref_opt(ref.m.parameters(), {0.1, 0.9});
  optim::SGD opt(net.m.parameters(), {0.1, 0.9});
  LossScalerOptions o;
  o.init_scale = 1024.0;
  o.growth_interval = 3;
  DynamicLossScaler scaler(net.m.parameters(), o);

  for (int s = 0; s < 7; ++s) {
    backward(ref, s, DType::f64, nullptr);
    ref_opt.step();
    backward(net, s, DType::f32, &scaler);
    // The gradients arrive multiplied by S (not merely rescaled by some other factor).
    if (s == 0) {
      Net plain(DType::f32);
      plain.copy_from(net);
      backward(plain, 0, DType::f32, nullptr);
      const Tensor& g = net.m.parameters()[0]->grad;
      const Tensor& g0 = plain.m.parameters()[0]->grad;
      for (int64_t i = 0; i < g.numel(); ++i)
        REQUIRE(g.data<float>()[i] == Approx(1024.0 * g0.data<float>()[i]).margin(1e-4));
    }
    REQUIRE(scaler.step(opt));
    // After step 3 (index 2) S doubled once, after step 6 twice.
    double expected = 1024.0 * (s >= 5 ? 4 : s >= 2 ? 2 : 1);
    REQUIRE(scaler.scale() == expected);
  }
  REQUIRE(scaler.clean_steps() == 1);
  REQUIRE(scaler.skipped_steps() == 0);
  REQUIRE(opt.step_count() == 7);
  // Unscaled correctly: the f32 parameters track the f64 ones to f32 rounding, not 1024x off.
  REQUIRE(max_abs_diff(net.values(), ref.values()) < 2e-5);
}

TEST_CASE("loss scaler: overflowing gradients skip the step and halve S", "[loss_scaler]") {
  Net ref(DType::f64), net(DType::f32);
  ref.copy_from(net);
  optim::SGD ref_opt(ref.m.parameters(), {0.1, 0.9});
  optim::SGD opt(net.m.parameters(), {0.1, 0.9});
  LossScalerOptions o;
  // 2^130 is beyond f32's range: the scaled loss gradient overflows to inf and the
  // backward pass spreads inf/NaN through every gradient.
  o.init_scale = std::ldexp(1.0, 130);
  o.max_scale = std::ldexp(1.0, 140);
  o.growth_interval = 1000;
  DynamicLossScaler scaler(net.m.parameters(), o);
  const std::vector<double> before = net.values();

  int skipped = 0;
  double S = o.init_scale;
  for (; skipped < 40; ++skipped) {
    backward(net, 0, DType::f32, &scaler);
    if (scaler.step(opt)) break;
    // Skipped: nothing moved (momentum buffers included: the next real step is the first).
    REQUIRE(net.values() == before);
    REQUIRE(opt.step_count() == 0);
    S *= 0.5;
    REQUIRE(scaler.scale() == S);
  }
  // At least S = 2^130 and 2^129 overflow (S * dL/dy leaves f32's range).
  REQUIRE(skipped >= 2);
  REQUIRE(skipped < 40);
  REQUIRE(scaler.skipped_steps() == skipped);
  REQUIRE(opt.step_count() == 1);
  REQUIRE(scaler.clean_steps() == 1);

  // The one step taken equals one unscaled f64 step.
  backward(ref, 0, DType::f64, nullptr);
  ref_opt.step();
  REQUIRE(max_abs_diff(net.values(), ref.values()) < 1e-6);
}

TEST_CASE("loss scaler: unscale finds inf and NaN in any float dtype and leaves gradients alone then",
          "[loss_scaler]") {
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16}) {
    nn::Parameter a, b;
    a.name = "a/weight";
    b.name = "b/bias";
    a.value = Tensor::zeros({3}, dt);
    b.value = Tensor::zeros({2}, dt);
    a.grad = Tensor::from_vector<double>({8, -4, 2}, {3}).to(dt);
    b.grad = Tensor::from_vector<double>({1, 0.5}, {2}).to(dt);
    DynamicLossScaler scaler({&a, &b}, LossScalerOptions{4.0, 2.0, 0.5, 10, 1.0, 1e6});
    REQUIRE(optim::grads_finite({&a, &b}));
    REQUIRE(scaler.unscale());
    Tensor ga = a.grad.to(DType::f64), gb = b.grad.to(DType::f64);
    CHECK(ga.data<double>()[0] == 2.0);
    CHECK(ga.data<double>()[1] == -1.0);
    CHECK(gb.data<double>()[1] == 0.125);

    for (double bad : {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                       std::numeric_limits<double>::quiet_NaN()}) {
      b.grad = Tensor::from_vector<double>({1, bad}, {2}).to(dt);
      a.grad = Tensor::from_vector<double>({8, -4, 2}, {3}).to(dt);
      REQUIRE_FALSE(optim::grads_finite({&a, &b}));
      REQUIRE_FALSE(scaler.unscale());
      CHECK(a.grad.to(DType::f64).data<double>()[0] == 8.0);  // untouched on overflow
    }
  }
}

TEST_CASE("loss scaler: S stays within its bounds; state round-trips; bad options are refused", "[loss_scaler]") {
  nn::Parameter p;
  p.name = "p";
  p.value = Tensor::zeros({1});
  p.grad = Tensor::zeros({1});
  LossScalerOptions o;
  o.init_scale = 4.0;
  o.min_scale = 1.0;
  o.max_scale = 8.0;
  o.growth_interval = 1;
  DynamicLossScaler s({&p}, o);
  s.update(true);
  s.update(true);
  s.update(true);
  REQUIRE(s.scale() == 1.0);  // 4 -> 2 -> 1 -> stays at min_scale
  for (int i = 0; i < 5; ++i) s.update(false);
  REQUIRE(s.scale() == 8.0);  // grows to max_scale and stops
  REQUIRE(s.skipped_steps() == 3);

  o.growth_interval = 5;
  DynamicLossScaler t({&p}, o), u({&p}, o);
  u.update(true);
  u.update(false);
  u.update(false);
  t.load_state(u.state());
  REQUIRE(t.scale() == 2.0);
  REQUIRE(t.clean_steps() == 2);
  REQUIRE(t.skipped_steps() == 1);
  REQUIRE_THROWS_WITH(t.load_state({}), Catch::Contains("loss_scaler/scale"));

  LossScalerOptions bad;
  bad.backoff_factor = 1.5;
  REQUIRE_THROWS_WITH(DynamicLossScaler({&p}, bad), Catch::Contains("backoff_factor"));
  bad = LossScalerOptions{};
  bad.growth_interval = 0;
  REQUIRE_THROWS_WITH(DynamicLossScaler({&p}, bad), Catch::Contains("growth_interval"));
}
