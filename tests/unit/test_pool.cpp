#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include "gradcheck.hpp"
#include "halo/nn/pool.hpp"

using namespace halo;
using namespace halo::testing;

namespace {

// Values that are a random permutation of an evenly spaced grid, so every window has a
// unique maximum far (>= 1e-3) from its runner-up: finite differences never flip the argmax.
Tensor distinct_tensor(const Shape& shape, uint64_t seed, DType dt = DType::f64) {
  const int64_t n = numel(shape);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  CounterRng rng(seed);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return rng.bits(uint64_t(a)) < rng.bits(uint64_t(b)); });
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(order[size_t(i)])] = -1.0 + 2.0 * double(i) / double(n);
  return Tensor::from_vector(v, shape).to(dt);
}

}  // namespace

TEST_CASE("max and avg pooling forward values on a hand example") {
  // 1x1x3x4 input, 2x2 windows, stride 2, padding 0 -> 1x1x1x2
  Tensor x = Tensor::from_vector<double>({1, 5, 2, 0,  //
                                          3, 4, 8, 7,  //
                                          9, 9, 9, 9},
                                         {1, 1, 3, 4});
  nn::MaxPool2d mp(2);
  CHECK(mp.forward(x).to_vector<double>() == std::vector<double>{5, 8});
  nn::AvgPool2d ap(2);
  CHECK(ap.forward(x).to_vector<double>() == std::vector<double>{13.0 / 4, 17.0 / 4});

  // Padding 1 with a 3x3 window, stride 2: the corner window covers 4 real values of 9.
  nn::AvgPool2d incl(3, 2, 1, true), excl(3, 2, 1, false);
  auto yi = incl.forward(x).to_vector<double>();
  auto ye = excl.forward(x).to_vector<double>();
  REQUIRE(yi.size() == 4);  // (3 + 2 - 3) / 2 + 1 = 2 by (4 + 2 - 3) / 2 + 1 = 2
  CHECK(yi[0] == Approx((1 + 5 + 3 + 4) / 9.0));
  CHECK(ye[0] == Approx((1 + 5 + 3 + 4) / 4.0));
  CHECK(ye[3] == Approx((4 + 8 + 7 + 9 + 9 + 9) / 6.0));
}

TEST_CASE("max pooling gradients match finite differences") {
  struct Case {
    int dims;
    int64_t k, s, p;
    Shape shape;
  };
  const std::vector<Case> cases = {{2, 3, 2, 1, {2, 3, 7, 9}}, {2, 2, 3, 0, {1, 2, 8, 7}},
                                   {3, 2, 2, 0, {1, 2, 5, 6, 7}}, {3, 3, 2, 1, {2, 2, 5, 4, 7}}};
  for (const auto& c : cases) {
    nn::PoolNd layer(nn::pool_config(ops::PoolKind::max, c.dims, c.k, c.s, c.p));
    layer.set_name("mp");
    INFO(layer.describe() << " " << layer.config().str() << " on " << to_string(c.shape));
    check_layer_gradients(layer, {distinct_tensor(c.shape, 11)});
  }
}

TEST_CASE("average pooling gradients match finite differences") {
  struct Case {
    int dims;
    int64_t k, s, p;
    bool include_pad;
    Shape shape;
  };
  const std::vector<Case> cases = {{2, 3, 2, 1, true, {2, 3, 7, 9}}, {2, 3, 2, 1, false, {2, 3, 7, 9}},
                                   {2, 2, 3, 1, false, {1, 2, 8, 7}}, {3, 3, 2, 1, true, {1, 2, 5, 6, 7}},
                                   {3, 3, 2, 1, false, {2, 2, 5, 4, 7}}, {3, 2, 1, 0, true, {1, 1, 3, 4, 5}}};
  for (const auto& c : cases) {
    nn::PoolNd layer(nn::pool_config(ops::PoolKind::avg, c.dims, c.k, c.s, c.p, c.include_pad));
    layer.set_name("ap");
    INFO(layer.config().str() << " on " << to_string(c.shape));
    check_layer_gradients(layer, {random_tensor(c.shape, 12)});
  }
}

TEST_CASE("global average pooling: values, shapes and gradients") {
  Tensor x = random_tensor({2, 3, 4, 5, 3}, 5);
  nn::GlobalAvgPool keep(true), flat(false);
  CHECK(keep.output_shape({x.shape()}) == Shape{2, 3, 1, 1, 1});
  CHECK(flat.output_shape({x.shape()}) == Shape{2, 3});
  auto xv = x.to_vector<double>();
  auto y = flat.forward(x).to_vector<double>();
  for (int64_t nc = 0; nc < 6; ++nc) {
    double s = 0;
    for (int64_t i = 0; i < 60; ++i) s += xv[size_t(nc * 60 + i)];
    CHECK(y[size_t(nc)] == Approx(s / 60).epsilon(1e-12));
  }
  // Channels-last input gives the same means.
  CHECK(max_abs_diff(flat.forward(x.to_memory_format(MemoryFormat::channels_last)), flat.forward(x)) < 1e-14);
  check_layer_gradients(keep, {random_tensor({2, 3, 3, 4}, 6)});
  check_layer_gradients(flat, {random_tensor({2, 3, 3, 2, 5}, 7)});
}

TEST_CASE("fast f32 pooling matches the reference in contiguous and channels-last layouts") {
  struct Case {
    ops::PoolKind kind;
    int dims;
    int64_t k, s, p;
    bool include_pad;
    Shape shape;
  };
  const std::vector<Case> cases = {
      {ops::PoolKind::max, 3, 2, 2, 0, true, {2, 16, 8, 9, 7}}, {ops::PoolKind::max, 3, 3, 2, 1, true, {1, 8, 7, 6, 9}},
      {ops::PoolKind::avg, 3, 3, 2, 1, true, {2, 8, 7, 6, 9}},  {ops::PoolKind::avg, 3, 3, 2, 1, false, {1, 8, 7, 6, 9}},
      {ops::PoolKind::max, 2, 3, 2, 1, true, {2, 16, 11, 13}},  {ops::PoolKind::avg, 2, 2, 3, 1, false, {2, 5, 10, 11}}};
  for (const auto& c : cases) {
    nn::PoolNd layer(nn::pool_config(c.kind, c.dims, c.k, c.s, c.p, c.include_pad));
    for (MemoryFormat fmt : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
      INFO(layer.config().str() << " on " << to_string(c.shape)
                                << (fmt == MemoryFormat::channels_last ? " channels-last" : " contiguous"));
      Tensor x64 = distinct_tensor(c.shape, 21);
      Tensor x = x64.to(DType::f32).to_memory_format(fmt);
      // f64 always runs the reference kernel.
      const Tensor y_ref = ops::pool_forward(x64, layer.config());
      Tensor y = layer.forward(x);
      CHECK(y.memory_format() == fmt);
      CHECK(max_abs_diff(y, y_ref) < 1e-6);

      Tensor g64 = random_tensor(y.shape(), 22);
      const Tensor dx_ref = ops::pool_backward(g64, x64, layer.config());
      Tensor dx = layer.backward(g64.to(DType::f32).to_memory_format(fmt))[0];
      CHECK(dx.memory_format() == fmt);
      CHECK(max_abs_diff(dx, dx_ref) < 1e-5);
    }
  }
}

TEST_CASE("a pooling layer follows a change of input shape and works without a kept plan") {
  nn::MaxPool3d layer(2);
  for (const Shape& s : {Shape{1, 4, 4, 4, 6}, Shape{2, 3, 6, 4, 4}, Shape{1, 4, 4, 4, 6}}) {
    Tensor x = distinct_tensor(s, 31, DType::f32).to_memory_format(MemoryFormat::channels_last);
    Tensor x64 = x.to(DType::f64);
    CHECK(max_abs_diff(layer.forward(x), ops::pool_forward(x64, layer.config())) < 1e-6);
    Tensor g = random_tensor(layer.output_shape({s}), 32);
    CHECK(max_abs_diff(layer.backward(g.to(DType::f32))[0], ops::pool_backward(g, x64, layer.config())) < 1e-5);
    // The plan-less op recomputes what it needs.
    CHECK(max_abs_diff(ops::pool_backward(g.to(DType::f32), x, layer.config()), ops::pool_backward(g, x64, layer.config())) <
          1e-5);
  }
}

TEST_CASE("pooling errors name the layer and the shapes") {
  nn::MaxPool3d layer(3);
  layer.set_name("pool1");
  try {
    layer.output_shape({{1, 2, 2, 8, 8}});
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    const std::string m = e.what();
    CHECK(m.find("MaxPool3d 'pool1'") != std::string::npos);
    CHECK(m.find("[1,2,2,8,8]") != std::string::npos);
  }
  CHECK_THROWS_AS(layer.forward(Tensor::zeros({1, 2, 8, 8})), ShapeError);
  CHECK_THROWS_AS(nn::MaxPool2d(2, 2, 2), ShapeError);  // padding above half the kernel
  CHECK(layer.forward_flops({{1, 2, 9, 9, 9}}) == 2 * 27 * 27);
}
