#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.hpp"
#include "halo/nn/batchnorm.hpp"

using namespace halo;
using namespace halo::testing;

namespace {
// Gives the affine parameters non-trivial values so their gradients are exercised.
void randomise_affine(nn::BatchNormNd& bn, uint64_t seed) {
  bn.weight().value.copy_(random_tensor({bn.channels()}, seed, bn.weight().value.dtype(), 0.5, 1.5));
  bn.bias().value.copy_(random_tensor({bn.channels()}, seed + 1, bn.weight().value.dtype()));
}
}  // namespace

TEST_CASE("batchnorm training forward and running statistics on a hand example") {
  // Two channels, N = 2, 1x2 spatial: channel 0 holds 1,2 | 3,4 and channel 1 holds 0,0 | 0,8.
  Tensor x = Tensor::from_vector<double>({1, 2, 0, 0, 3, 4, 0, 8}, {2, 2, 1, 2});
  nn::BatchNorm2d bn(2, 1e-5, 0.1, DType::f64);
  bn.weight().value.copy_(Tensor::from_vector<double>({2, 1}, {2}));
  bn.bias().value.copy_(Tensor::from_vector<double>({0.5, -1}, {2}));
  Tensor y = bn.forward(x);

  // channel 0: mean 2.5, biased var 1.25, unbiased 5/3; channel 1: mean 2, biased var 12, unbiased 16.
  const double inv0 = 1 / std::sqrt(1.25 + 1e-5), inv1 = 1 / std::sqrt(12 + 1e-5);
  const std::vector<double> expect = {2 * (1 - 2.5) * inv0 + 0.5, 2 * (2 - 2.5) * inv0 + 0.5, (0 - 2.0) * inv1 - 1,
                                      (0 - 2.0) * inv1 - 1,       2 * (3 - 2.5) * inv0 + 0.5, 2 * (4 - 2.5) * inv0 + 0.5,
                                      (0 - 2.0) * inv1 - 1,       (8 - 2.0) * inv1 - 1};
  auto yv = y.to_vector<double>();
  for (size_t i = 0; i < expect.size(); ++i) CHECK(yv[i] == Approx(expect[i]).epsilon(1e-12));

  auto rm = bn.running_mean().to_vector<double>();
  auto rv = bn.running_var().to_vector<double>();
  CHECK(rm[0] == Approx(0.1 * 2.5).epsilon(1e-14));
  CHECK(rm[1] == Approx(0.1 * 2.0).epsilon(1e-14));
  CHECK(rv[0] == Approx(0.9 * 1 + 0.1 * 5.0 / 3.0).epsilon(1e-14));
  CHECK(rv[1] == Approx(0.9 * 1 + 0.1 * 16.0).epsilon(1e-14));

  // A second step compounds: running = 0.9 * running + 0.1 * batch.
  bn.forward(x);
  CHECK(bn.running_mean().to_vector<double>()[0] == Approx(0.9 * 0.25 + 0.25).epsilon(1e-14));
  CHECK(bn.running_var().to_vector<double>()[1] == Approx(0.9 * (0.9 + 1.6) + 1.6).epsilon(1e-14));

  // Eval mode uses the running statistics and leaves them alone.
  bn.set_training(false);
  const double m0 = bn.running_mean().to_vector<double>()[0], v0 = bn.running_var().to_vector<double>()[0];
  auto ye = bn.forward(x).to_vector<double>();
  CHECK(ye[0] == Approx(2 * (1 - m0) / std::sqrt(v0 + 1e-5) + 0.5).epsilon(1e-12));
  CHECK(bn.running_mean().to_vector<double>()[0] == m0);
}

TEST_CASE("batchnorm gradients match finite differences in training mode") {
  nn::BatchNorm2d bn2(4, 1e-5, 0.1, DType::f64);
  bn2.set_name("bn2");
  randomise_affine(bn2, 3);
  check_layer_gradients(bn2, {random_tensor({3, 4, 5, 6}, 4, DType::f64, -2, 3)});

  nn::BatchNorm3d bn3(3, 1e-3, 0.1, DType::f64);
  randomise_affine(bn3, 5);
  check_layer_gradients(bn3, {random_tensor({2, 3, 3, 4, 5}, 6)});
}

TEST_CASE("batchnorm gradients match finite differences in eval mode") {
  nn::BatchNorm3d bn(3, 1e-5, 0.1, DType::f64);
  randomise_affine(bn, 7);
  bn.running_mean().copy_(random_tensor({3}, 8));
  bn.running_var().copy_(random_tensor({3}, 9, DType::f64, 0.5, 2.0));
  bn.set_training(false);
  check_layer_gradients(bn, {random_tensor({2, 3, 2, 3, 4}, 10)});
}

TEST_CASE("a StatsReducer that doubles the statistics (two identical ranks) changes nothing but the count") {
  const Shape shape = {2, 3, 4, 5};
  Tensor x = random_tensor(shape, 11);
  Tensor g = random_tensor(shape, 12);

  nn::BatchNorm2d plain(3, 1e-5, 0.1, DType::f64), synced(3, 1e-5, 0.1, DType::f64);
  randomise_affine(plain, 13);
  randomise_affine(synced, 13);
  std::vector<size_t> calls;
  synced.set_stats_reducer([&](double* v, size_t n) {
    calls.push_back(n);
    for (size_t i = 0; i < n; ++i) v[i] *= 2;
  });

  Tensor y_plain = plain.forward(x);
  Tensor y_sync = synced.forward(x);
  REQUIRE(calls == std::vector<size_t>{2 * 3 + 1});
  CHECK(max_abs_diff(y_plain, y_sync) < 1e-12);
  CHECK(max_abs_diff(plain.running_mean(), synced.running_mean()) < 1e-14);
  // The unbiased correction uses the group's count: M/(M-1) with M = 2 * 40 instead of 40.
  const double M = 40;
  auto rv_plain = plain.running_var().to_vector<double>();
  auto rv_sync = synced.running_var().to_vector<double>();
  for (size_t c = 0; c < 3; ++c) {
    const double batch_var = (rv_plain[c] - 0.9) / 0.1 * (M - 1) / M;
    CHECK(rv_sync[c] == Approx(0.9 + 0.1 * batch_var * 2 * M / (2 * M - 1)).epsilon(1e-12));
  }

  Tensor dx_plain = plain.backward(g)[0];
  Tensor dx_sync = synced.backward(g)[0];
  REQUIRE(calls == std::vector<size_t>{2 * 3 + 1, 2 * 3});
  CHECK(max_abs_diff(dx_plain, dx_sync) < 1e-12);
  // Parameter gradients stay local (the gradient synchroniser averages them).
  CHECK(max_abs_diff(plain.weight().grad, synced.weight().grad) < 1e-12);
  CHECK(max_abs_diff(plain.bias().grad, synced.bias().grad) < 1e-12);

  // Eval mode never reduces.
  synced.set_training(false);
  synced.forward(x);
  synced.backward(g);
  CHECK(calls.size() == 2);
}

TEST_CASE("a reducer summing over two different halves equals BatchNorm over the whole batch") {
  // Two simulated ranks hold halves of a batch of 4; each one's reducer adds the other's sums.
  const Shape whole_shape = {4, 2, 3, 3};
  Tensor whole = random_tensor(whole_shape, 14, DType::f64, -1, 2);
  Tensor g = random_tensor(whole_shape, 15);
  nn::BatchNorm2d ref(2, 1e-5, 0.1, DType::f64), r0(2, 1e-5, 0.1, DType::f64), r1(2, 1e-5, 0.1, DType::f64);
  for (auto* bn : {&ref, &r0, &r1}) randomise_affine(*bn, 16);
  Tensor y_ref = ref.forward(whole);
  Tensor dx_ref = ref.backward(g)[0];
  const Tensor x0 = whole.slice(0, 2).contiguous(), x1 = whole.slice(2, 4).contiguous();
  const Tensor g0 = g.slice(0, 2).contiguous(), g1 = g.slice(2, 4).contiguous();

  std::vector<double> local1, local0;
  auto record = [](std::vector<double>& into) { return [&into](double* v, size_t n) { into.assign(v, v + n); }; };
  auto add = [](const std::vector<double>& other) {
    return [&other](double* v, size_t n) {
      REQUIRE(other.size() == n);
      for (size_t i = 0; i < n; ++i) v[i] += other[i];
    };
  };
  // Forward: rank 1's local sums, then rank 0 with both (recording its own local sums).
  r1.set_stats_reducer(record(local1));
  r1.forward(x1);
  r0.set_stats_reducer([&](double* v, size_t n) {
    local0.assign(v, v + n);
    add(local1)(v, n);
  });
  CHECK(max_abs_diff(r0.forward(x0), y_ref.slice(0, 2)) < 1e-12);
  r1.set_stats_reducer(add(local0));
  CHECK(max_abs_diff(r1.forward(x1), y_ref.slice(2, 4)) < 1e-12);
  // Backward: rank 1's local gradient sums (under the global statistics) reach rank 0.
  r1.set_stats_reducer(record(local1));
  r1.backward(g1);
  r0.set_stats_reducer(add(local1));
  CHECK(max_abs_diff(r0.backward(g0)[0], dx_ref.slice(0, 2)) < 1e-12);
}

TEST_CASE("fast f32 batchnorm matches the reference in contiguous and channels-last layouts") {
  for (const Shape& shape : {Shape{4, 16, 5, 6, 7}, Shape{3, 5, 9, 11}}) {
    for (MemoryFormat fmt : {MemoryFormat::contiguous, MemoryFormat::channels_last}) {
      INFO(to_string(shape) << (fmt == MemoryFormat::channels_last ? " channels-last" : " contiguous"));
      const int dims = int(shape.size()) - 2;
      const int64_t C = shape[1];
      nn::BatchNormNd f32(dims, C, 1e-5, 0.1, DType::f32), f64(dims, C, 1e-5, 0.1, DType::f64);
      randomise_affine(f64, 17);
      f32.weight().value.copy_(f64.weight().value);
      f32.bias().value.copy_(f64.bias().value);
      Tensor x64 = random_tensor(shape, 18, DType::f64, -1, 3);
      Tensor g64 = random_tensor(shape, 19);
      Tensor x = x64.to(DType::f32).to_memory_format(fmt);
      for (bool training : {true, false}) {
        f32.set_training(training);
        f64.set_training(training);
        Tensor y = f32.forward(x);
        CHECK(y.memory_format() == fmt);
        CHECK(max_abs_diff(y, f64.forward(x64)) < 2e-5);
        CHECK(max_abs_diff(f32.running_mean(), f64.running_mean()) < 1e-6);
        CHECK(max_abs_diff(f32.running_var(), f64.running_var()) < 1e-5);
        Tensor dx = f32.backward(g64.to(DType::f32).to_memory_format(fmt))[0];
        CHECK(dx.memory_format() == fmt);
        CHECK(max_abs_diff(dx, f64.backward(g64)[0]) < 2e-5);
        CHECK(max_abs_diff(f32.weight().grad, f64.weight().grad) < 1e-3);
        CHECK(max_abs_diff(f32.bias().grad, f64.bias().grad) < 1e-3);
      }
    }
  }
}

TEST_CASE("batchnorm errors name the layer and the shapes") {
  nn::BatchNorm3d bn(8);
  bn.set_name("bn1");
  try {
    bn.forward(Tensor::zeros({2, 4, 3, 3, 3}));
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    const std::string m = e.what();
    CHECK(m.find("BatchNorm3d 'bn1'") != std::string::npos);
    CHECK(m.find("[2,4,3,3,3]") != std::string::npos);
  }
  CHECK_THROWS_AS(bn.forward(Tensor::zeros({2, 8, 3, 3, 3}, DType::f64)), ShapeError);  // dtype mismatch
  CHECK_THROWS_AS(bn.forward(Tensor::zeros({1, 8, 1, 1, 1})), ShapeError);             // one value per channel
  CHECK(bn.parameters().size() == 2);
  CHECK_FALSE(bn.parameters()[0].weight_decay);
  CHECK_FALSE(bn.parameters()[1].weight_decay);
  CHECK(bn.buffers().size() == 2);
  CHECK(bn.buffers()[1].name == "running_var");
}
