#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.hpp"
#include "halo/nn/activation.hpp"
#include "halo/ops/elementwise.hpp"

using namespace halo;
using testing::max_abs_diff;
using testing::random_tensor;

namespace {
const ops::Activation kAll[] = {ops::Activation::relu, ops::Activation::leaky_relu, ops::Activation::tanh,
                                ops::Activation::sigmoid};
}

TEST_CASE("activation kernels match the reference on random f32 data, any layout") {
  for (auto a : kAll) {
    INFO(ops::name(a));
    // Large enough that the OpenMP loops run in parallel.
    Tensor x = random_tensor({2, 8, 20, 20, 20}, 3, DType::f32, -4, 4);
    Tensor gy = random_tensor(x.shape(), 4, DType::f32);
    Tensor y = ops::activation_forward(a, x, 0.1);
    Tensor yr = ops::reference::activation_forward(a, x, 0.1);
    CHECK(max_abs_diff(y, yr) <= 1e-6);
    CHECK(max_abs_diff(ops::activation_backward(a, y, gy, 0.1), ops::reference::activation_backward(a, yr, gy, 0.1)) <=
          1e-6);

    Tensor xcl = x.to_memory_format(MemoryFormat::channels_last);
    Tensor ycl = ops::activation_forward(a, xcl, 0.1);
    CHECK(ycl.memory_format() == MemoryFormat::channels_last);
    CHECK(max_abs_diff(ycl, yr) <= 1e-6);
    // gradient arriving in the other layout is reordered, not misread
    Tensor gcl = ops::activation_backward(a, ycl, gy, 0.1);
    CHECK(gcl.memory_format() == MemoryFormat::channels_last);
    CHECK(max_abs_diff(gcl, ops::reference::activation_backward(a, yr, gy, 0.1)) <= 1e-6);
  }
}

TEST_CASE("activation values on hand-picked inputs") {
  Tensor x = Tensor::from_vector<double>({-2, 0, 3}, {3});
  CHECK(ops::activation_forward(ops::Activation::relu, x).to_vector<double>() == std::vector<double>{0, 0, 3});
  CHECK(ops::activation_forward(ops::Activation::leaky_relu, x, 0.5).to_vector<double>() ==
        std::vector<double>{-1, 0, 3});
  auto s = ops::activation_forward(ops::Activation::sigmoid, Tensor::from_vector<float>({-200.f, 0.f, 200.f}, {3}))
               .to_vector<float>();
  CHECK(s == std::vector<float>{0.f, 0.5f, 1.f});  // no NaN at the extremes
  CHECK(ops::activation_forward(ops::Activation::tanh, x).to_vector<double>()[2] == Approx(std::tanh(3.0)));
  CHECK_THROWS_AS(nn::LeakyReLU(-0.1), ConfigError);
}

TEST_CASE("add, scale, axpy, axpby, mul, sum, dot match plain loops") {
  Tensor a = random_tensor({3, 4, 50, 60}, 11, DType::f32);
  Tensor b = random_tensor({3, 4, 50, 60}, 12, DType::f32);
  auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  auto check_vs = [&](const Tensor& t, auto f) {
    auto v = t.to_vector<double>();
    double m = 0;
    for (size_t i = 0; i < v.size(); ++i) m = std::max(m, std::abs(v[i] - f(i)));
    CHECK(m <= 1e-6);
  };
  check_vs(ops::add(a, b.to_memory_format(MemoryFormat::channels_last)), [&](size_t i) { return va[i] + vb[i]; });
  check_vs(ops::add_n({a, b, a}), [&](size_t i) { return 2 * va[i] + vb[i]; });
  check_vs(ops::scale(a, -1.5), [&](size_t i) { return -1.5 * va[i]; });
  check_vs(ops::mul(a, b), [&](size_t i) { return va[i] * vb[i]; });
  Tensor y = a.clone();
  ops::axpy_(y, 2.0, b);
  check_vs(y, [&](size_t i) { return va[i] + 2 * vb[i]; });
  y = a.clone();
  ops::axpby_(y, 0.5, b, 0.9);
  Tensor yr = a.clone();
  ops::reference::axpby_(yr, 0.5, b, 0.9);
  check_vs(y, [&](size_t i) { return 0.5 * vb[i] + 0.9 * va[i]; });
  CHECK(max_abs_diff(y, yr) <= 1e-6);
  y = a.clone();
  ops::scale_(y, 3.0);
  check_vs(y, [&](size_t i) { return 3 * va[i]; });
  double s = 0, d = 0, q = 0;
  for (size_t i = 0; i < va.size(); ++i) s += va[i], d += va[i] * vb[i], q += va[i] * va[i];
  CHECK(ops::sum(a) == Approx(s).margin(1e-6));
  CHECK(ops::dot(a, b) == Approx(d).margin(1e-6));
  CHECK(ops::sum_squares(a) == Approx(q));
  CHECK_THROWS_AS(ops::add(a, Tensor::zeros({3, 4})), ShapeError);
}

TEST_CASE("activation layers pass finite-difference gradient checks") {
  // Inputs avoid the kink at 0 by more than eps so ReLU's derivative is defined there.
  const std::vector<Shape> shapes = {{4, 7}, {2, 3, 5, 4}, {1, 2, 3, 4, 5}};
  for (const auto& shape : shapes) {
    Tensor x = random_tensor(shape, 5, DType::f64, 0.01, 1.0);
    auto v = x.to_vector<double>();
    for (size_t i = 0; i < v.size(); i += 2) v[i] = -v[i];
    x = Tensor::from_vector<double>(v, shape);
    nn::ReLU relu;
    nn::LeakyReLU leaky(0.2);
    nn::Tanh tanh_layer;
    nn::Sigmoid sig;
    for (nn::Layer* l : std::vector<nn::Layer*>{&relu, &leaky, &tanh_layer, &sig}) {
      INFO(l->type() << " " << to_string(shape));
      testing::check_layer_gradients(*l, {x});
    }
  }
}

TEST_CASE("activation layer errors name the layer; eval mode keeps nothing") {
  nn::ReLU relu;
  relu.set_name("act1");
  CHECK_THROWS_WITH(relu.output_shape({{2, 3}, {2, 3}}), Catch::Contains("ReLU 'act1'"));
  relu.set_training(false);
  relu.forward(Tensor::zeros({2, 3}));
  CHECK_THROWS_WITH(relu.backward(Tensor::zeros({2, 3})), Catch::Contains("ReLU 'act1'"));
  relu.set_training(true);
  relu.forward(Tensor::zeros({2, 3}));
  CHECK_THROWS_WITH(relu.backward(Tensor::zeros({2, 4})), Catch::Contains("[2,4]") && Catch::Contains("ReLU 'act1'"));
}
