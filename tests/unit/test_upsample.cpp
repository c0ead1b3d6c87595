#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "halo/nn/upsample.hpp"

using namespace halo;
using namespace halo::testing;
using ops::UpsampleMode;

TEST_CASE("nearest upsampling values: integer factors and target sizes") {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4}, {1, 1, 2, 2});
  auto up = nn::Upsample::by_scale(2, 2);
  CHECK(up.forward(x).to_vector<double>() ==
        std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});

  // 3 -> 5 columns: source = floor(dst * 3 / 5) = 0, 0, 1, 1, 2.
  Tensor row = Tensor::from_vector<double>({7, 8, 9}, {1, 1, 1, 3});
  auto to5 = nn::Upsample::to_size({1, 5});
  CHECK(to5.forward(row).to_vector<double>() == std::vector<double>{7, 7, 8, 8, 9});

  Tensor v = Tensor::from_vector<double>({1, 2}, {1, 1, 2, 1, 1});
  auto up3 = nn::Upsample::by_scale(3, 2);
  CHECK(up3.output_shape({v.shape()}) == Shape{1, 1, 4, 2, 2});
  CHECK(up3.forward(v).to_vector<double>() == std::vector<double>{1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2});
}

TEST_CASE("bilinear upsampling values follow the half-pixel and align-corners conventions") {
  Tensor row = Tensor::from_vector<double>({0, 1}, {1, 1, 1, 2});
  auto half = nn::Upsample::by_scale(2, 2, UpsampleMode::bilinear, false);
  auto y = half.forward(row).to_vector<double>();  // 2x4; both rows equal
  const std::vector<double> expect_row = {0, 0.25, 0.75, 1};
  for (size_t i = 0; i < 8; ++i) CHECK(y[i] == Approx(expect_row[i % 4]).margin(1e-15));

  Tensor sq = Tensor::from_vector<double>({0, 1, 2, 3}, {1, 1, 2, 2});
  auto corners = nn::Upsample::to_size({3, 3}, UpsampleMode::bilinear, true);
  auto z = corners.forward(sq).to_vector<double>();
  const std::vector<double> expect = {0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3};
  for (size_t i = 0; i < 9; ++i) CHECK(z[i] == Approx(expect[i]).margin(1e-15));
}

TEST_CASE("upsampling gradients match finite differences") {
  std::vector<std::pair<nn::Upsample, Shape>> cases;
  cases.emplace_back(nn::Upsample::by_scale(2, 2), Shape{2, 3, 3, 5});
  cases.emplace_back(nn::Upsample(ops::UpsampleConfig{UpsampleMode::nearest, {2, 3}, {}, false}), Shape{1, 2, 3, 2});
  cases.emplace_back(nn::Upsample::by_scale(3, 2), Shape{1, 2, 3, 2, 3});
  cases.emplace_back(nn::Upsample::to_size({5, 7}), Shape{1, 2, 3, 4});
  cases.emplace_back(nn::Upsample::to_size({3, 5, 4}), Shape{1, 1, 2, 3, 3});
  cases.emplace_back(nn::Upsample::by_scale(2, 2, UpsampleMode::bilinear, false), Shape{2, 2, 3, 5});
  cases.emplace_back(nn::Upsample::by_scale(2, 3, UpsampleMode::bilinear, true), Shape{1, 2, 4, 3});
  cases.emplace_back(nn::Upsample::to_size({7, 5}, UpsampleMode::bilinear, false), Shape{1, 2, 3, 4});
  cases.emplace_back(nn::Upsample::to_size({6, 9}, UpsampleMode::bilinear, true), Shape{1, 1, 4, 4});
  for (auto& [layer, shape] : cases) {
    INFO(layer.config().str() << " on " << to_string(shape));
    check_layer_gradients(layer, {random_tensor(shape, 3)});
  }
}

TEST_CASE("upsampling keeps the input's memory format and values") {
  for (auto mode : {UpsampleMode::nearest, UpsampleMode::bilinear}) {
    auto layer = nn::Upsample::by_scale(2, 2, mode);
    Tensor x = random_tensor({2, 5, 4, 3}, 4, DType::f32);
    Tensor xc = x.to_memory_format(MemoryFormat::channels_last);
    Tensor y = layer.forward(x);
    Tensor yc = layer.forward(xc);
    CHECK(yc.memory_format() == MemoryFormat::channels_last);
    CHECK(max_abs_diff(y, yc) == 0);
    Tensor g = random_tensor(y.shape(), 5, DType::f32);
    Tensor dx = layer.backward(g.to_memory_format(MemoryFormat::channels_last))[0];
    CHECK(dx.memory_format() == MemoryFormat::channels_last);
    CHECK(max_abs_diff(dx, ops::upsample_backward(g, x.shape(), layer.config())) < 1e-6);
  }
}

TEST_CASE("upsampling errors name the layer and the shapes") {
  auto layer = nn::Upsample::by_scale(2, 2, UpsampleMode::bilinear);
  layer.set_name("up1");
  try {
    layer.output_shape({{1, 2, 3, 4, 5}});
    FAIL("expected a ShapeError");
  } catch (const ShapeError& e) {
    const std::string m = e.what();
    CHECK(m.find("Upsample 'up1'") != std::string::npos);
    CHECK(m.find("[1,2,3,4,5]") != std::string::npos);
  }
  CHECK_THROWS_AS(nn::Upsample::by_scale(3, 2, UpsampleMode::bilinear), ShapeError);
  CHECK(layer.forward_flops({{1, 2, 3, 4}}) > 0);
}
