#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "halo/nn/dropout.hpp"
#include "halo/nn/structure.hpp"
#include "halo/util/threads.hpp"

using namespace halo;
using testing::max_abs_diff;
using testing::random_tensor;

namespace {
Tensor channels_last(const Tensor& t) { return t.to_memory_format(MemoryFormat::channels_last); }
}  // namespace

TEST_CASE("Flatten of a channels-last tensor equals flatten of the contiguous one") {
  Tensor x = random_tensor({2, 3, 4, 5, 6}, 1, DType::f32);
  nn::Flatten f;
  Tensor a = f.forward(x);
  Tensor b = f.forward(channels_last(x));
  CHECK(a.shape() == Shape{2, 360});
  CHECK(a.to_vector<float>() == x.to_vector<float>());  // logical (C, D, H, W) order
  CHECK(b.to_vector<float>() == a.to_vector<float>());
  Tensor g = f.backward(a)[0];
  CHECK(g.shape() == x.shape());
  CHECK(g.to_vector<float>() == x.to_vector<float>());
}

TEST_CASE("Concat along channels, any layout, 2-D and 3-D spatial") {
  for (Shape spatial : {Shape{}, Shape{3, 4}, Shape{2, 3, 4}}) {
    auto shp = [&](int64_t c) {
      Shape s{2, c};
      s.insert(s.end(), spatial.begin(), spatial.end());
      return s;
    };
    INFO("spatial " << to_string(spatial));
    Tensor a = random_tensor(shp(2), 1), b = random_tensor(shp(3), 2), c = random_tensor(shp(1), 3);
    nn::Concat cat;
    Tensor y = cat.forward({a, b, c});
    REQUIRE(y.shape() == shp(6));
    // Plain check: channel k of the output is the right channel of the right input.
    auto vy = y.to_vector<double>();
    auto va = a.to_vector<double>(), vb = b.to_vector<double>(), vc = c.to_vector<double>();
    const int64_t s = numel(spatial);
    int mismatches = 0;
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t k = 0; k < 6; ++k)
        for (int64_t i = 0; i < s; ++i) {
          double want = k < 2 ? va[size_t((n * 2 + k) * s + i)]
                              : k < 5 ? vb[size_t((n * 3 + k - 2) * s + i)] : vc[size_t(n * s + i)];
          mismatches += vy[size_t((n * 6 + k) * s + i)] != want;
        }
    CHECK(mismatches == 0);
    if (!spatial.empty()) {
      Tensor ycl = cat.forward({channels_last(a), channels_last(b), channels_last(c)});
      CHECK(ycl.memory_format() == MemoryFormat::channels_last);
      CHECK(max_abs_diff(ycl, y) == 0.0);
      Tensor ymix = cat.forward({channels_last(a), b, channels_last(c)});
      CHECK(max_abs_diff(ymix, y) == 0.0);
      auto gs = cat.backward(channels_last(y));
      REQUIRE(gs.size() == 3);
      CHECK(max_abs_diff(gs[1], b) == 0.0);
      CHECK(gs[1].memory_format() == MemoryFormat::channels_last);
    }
    nn::Concat cat2;
    testing::check_layer_gradients(cat2, {a, b, c});
  }
}

TEST_CASE("Add and Scale: values and gradient checks") {
  for (Shape shape : {Shape{3, 5}, Shape{2, 3, 4, 5}}) {
    Tensor a = random_tensor(shape, 1), b = random_tensor(shape, 2), c = random_tensor(shape, 3);
    nn::Add add;
    Tensor y = add.forward({a, b, c});
    auto va = a.to_vector<double>(), vb = b.to_vector<double>(), vc = c.to_vector<double>(), vy = y.to_vector<double>();
    for (size_t i = 0; i < vy.size(); i += 7) CHECK(vy[i] == Approx(va[i] + vb[i] + vc[i]));
    testing::check_layer_gradients(add, {a, b, c});
    auto gs = add.backward(a);
    CHECK(gs[0].raw_data() != gs[1].raw_data());  // each input owns its gradient
    nn::Scale scale(1.2);
    CHECK(max_abs_diff(scale.forward(a), testing::random_tensor(shape, 1, DType::f64, -1.2, 1.2)) <= 1e-12);
    testing::check_layer_gradients(scale, {a});
  }
}

TEST_CASE("structure layers: shape errors name the layer and the shapes") {
  nn::Add add;
  add.set_name("skip1");
  CHECK_THROWS_WITH(add.output_shape({{2, 3, 4}, {2, 3, 5}}),
                    Catch::Contains("Add 'skip1'") && Catch::Contains("[2,3,5]") && Catch::Contains("[2,3,4]"));
  nn::Concat cat;
  cat.set_name("cat");
  CHECK_THROWS_WITH(cat.forward({Tensor::zeros({2, 3, 4, 4}), Tensor::zeros({2, 3, 4, 5})}),
                    Catch::Contains("Concat 'cat'") && Catch::Contains("[2,3,4,5]"));
  CHECK(cat.output_shape({{2, 3, 4, 4}, {2, 5, 4, 4}}) == Shape{2, 8, 4, 4});
  nn::Flatten f;
  f.set_name("flat");
  CHECK_THROWS_WITH(f.output_shape({{5}}), Catch::Contains("Flatten 'flat'") && Catch::Contains("[5]"));
}

TEST_CASE("Dropout: reproducible, varies by step, identity in eval, keep fraction, inverted scaling") {
  const double p = 0.3;
  Tensor x = Tensor::full({4, 8, 16, 16}, 1.0);
  nn::Dropout d(p, 1234);
  Tensor y0 = d.forward(x);
  Tensor y1 = d.forward(x);
  CHECK(d.step() == 2);
  CHECK(max_abs_diff(y0, y1) > 0);  // a fresh mask each step
  nn::Dropout again(p, 1234);
  CHECK(max_abs_diff(again.forward(x), y0) == 0.0);  // same seed and step, same mask
  again.set_step(1);
  CHECK(max_abs_diff(again.forward(x), y1) == 0.0);  // restored step counter
  nn::Dropout other_seed(p, 99);
  CHECK(max_abs_diff(other_seed.forward(x), y0) > 0);

  auto v = y0.to_vector<float>();
  int64_t kept = 0;
  for (float e : v) {
    REQUIRE((e == 0.0f || e == Approx(1.0 / (1.0 - p))));
    kept += e != 0.0f;
  }
  const double frac = double(kept) / double(v.size());  // 8192 draws: sd of the fraction ~0.005
  CHECK(frac == Approx(1.0 - p).margin(0.025));

  // Same mask for a channels-last input (keyed by logical index).
  nn::Dropout cl(p, 1234);
  Tensor xr = random_tensor({4, 8, 16, 16}, 5, DType::f32);
  Tensor ycl = cl.forward(channels_last(xr));
  CHECK(ycl.memory_format() == MemoryFormat::channels_last);
  nn::Dropout plain(p, 1234);
  CHECK(max_abs_diff(ycl, plain.forward(xr)) == 0.0);

  // Backward multiplies by the same mask: dropout is linear in x for a fixed mask.
  Tensor g = random_tensor(xr.shape(), 6, DType::f32);
  auto gx = plain.backward(g)[0].to_vector<double>();
  auto yv = ycl.to_vector<double>(), gv = g.to_vector<double>();
  int bad = 0;
  for (size_t i = 0; i < gx.size(); ++i) {
    const double m = yv[i] == 0.0 ? 0.0 : 1.0 / (1.0 - p);
    bad += std::abs(gx[i] - m * gv[i]) > 1e-6;
  }
  CHECK(bad == 0);

  // Eval mode: identity, and the step counter does not move.
  d.set_training(false);
  CHECK(max_abs_diff(d.forward(xr), xr) == 0.0);
  CHECK(d.step() == 2);
  CHECK(max_abs_diff(d.backward(g)[0], g) == 0.0);
  CHECK_THROWS_AS(nn::Dropout(1.0, 1), ConfigError);
}

TEST_CASE("Dropout masks do not depend on the thread count") {
  Tensor x = Tensor::full({2, 16, 32, 32}, 1.0);  // large enough for the parallel loop
  const int threads = num_threads();
  set_num_threads(1);
  Tensor one = nn::Dropout(0.5, 7).forward(x);
  set_num_threads(std::max(2, threads));
  Tensor many = nn::Dropout(0.5, 7).forward(x);
  set_num_threads(threads);
  CHECK(max_abs_diff(one, many) == 0.0);
}
