#include <catch2/catch.hpp>

#include <cmath>

#include "gradcheck.hpp"
#include "halo/nn/linear.hpp"
#include "halo/ops/matmul.hpp"

using namespace halo;
using testing::max_abs;
using testing::max_abs_diff;
using testing::random_tensor;

TEST_CASE("BLAS gemm matches the reference for every transpose, f32 and f64") {
  const int64_t m = 37, n = 29, k = 53;
  for (DType dt : {DType::f32, DType::f64})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        INFO(name(dt) << " ta=" << ta << " tb=" << tb);
        Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, 1, dt);
        Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, 2, dt);
        Tensor c0 = random_tensor({m, n}, 3, dt);
        Tensor c = c0.clone(), cr = c0.clone();
        ops::gemm(ta, tb, 0.7, a, b, 0.3, c);
        ops::reference::gemm(ta, tb, 0.7, a, b, 0.3, cr);
        CHECK(max_abs_diff(c, cr) <= (dt == DType::f32 ? 1e-5 : 1e-12) * (1 + max_abs(cr)));
      }
}

TEST_CASE("reference gemm agrees with a hand-computed product") {
  Tensor a = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<double>({1, 0, 0, 1, 1, 1}, {3, 2});
  Tensor c = Tensor::zeros({2, 2}, DType::f64);
  ops::reference::gemm(false, false, 1.0, a, b, 0.0, c);
  CHECK(c.to_vector<double>() == std::vector<double>{4, 5, 10, 11});
  CHECK(ops::matmul(a, b).to_vector<double>() == std::vector<double>{4, 5, 10, 11});
  CHECK_THROWS_WITH(ops::matmul(a, a), Catch::Contains("[2,3]"));
}

TEST_CASE("Linear forward is x W^T + b") {
  nn::Linear lin(3, 2, true, DType::f64);
  lin.weight().value = Tensor::from_vector<double>({1, 2, 3, -1, 0, 1}, {2, 3});
  lin.bias().value = Tensor::from_vector<double>({0.5, -0.5}, {2});
  Tensor y = lin.forward(Tensor::from_vector<double>({1, 1, 1, 2, 0, -1}, {2, 3}));
  CHECK(y.to_vector<double>() == std::vector<double>{6.5, -0.5, -0.5, -3.5});
  CHECK(lin.forward_flops({{1, 3}}) == 12.0);
}

TEST_CASE("Linear passes finite-difference gradient checks") {
  for (auto [n, in, out, bias] : std::vector<std::tuple<int, int, int, bool>>{{1, 1, 1, true}, {4, 7, 5, true},
                                                                             {3, 16, 2, false}}) {
    INFO("N=" << n << " in=" << in << " out=" << out << " bias=" << bias);
    nn::Linear lin(in, out, bias, DType::f64);
    lin.init_parameters(42);
    if (bias) lin.bias().value.copy_(random_tensor({out}, 9));
    testing::check_layer_gradients(lin, {random_tensor({n, in}, 8)});
  }
}

TEST_CASE("Linear initialisation: Kaiming-uniform weight, zero bias, decay flags") {
  nn::Linear lin(64, 32);
  lin.weight().name = "fc/weight";
  lin.init_parameters(1);
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 64);
  auto w = lin.weight().value.to_vector<double>();
  double mx = 0, sq = 0;
  for (double v : w) mx = std::max(mx, std::abs(v)), sq += v * v;
  CHECK(mx <= bound);
  CHECK(mx > 0.9 * bound);
  CHECK(std::sqrt(sq / double(w.size())) == Approx(bound / std::sqrt(3.0)).epsilon(0.1));
  CHECK(lin.bias().value.to_vector<double>() == std::vector<double>(32, 0.0));
  CHECK(lin.weight().weight_decay);
  CHECK_FALSE(lin.bias().weight_decay);
  nn::Linear again(64, 32);
  again.weight().name = "fc/weight";
  again.init_parameters(1);
  CHECK(max_abs_diff(again.weight().value, lin.weight().value) == 0.0);
}

TEST_CASE("Linear shape errors name the layer and the shapes") {
  nn::Linear lin(8, 4);
  lin.set_name("fc1");
  CHECK_THROWS_WITH(lin.output_shape({{2, 5}}), Catch::Contains("Linear 'fc1'") && Catch::Contains("[2,5]"));
  CHECK_THROWS_WITH(lin.forward(Tensor::zeros({2, 2, 2, 2})), Catch::Contains("Flatten"));
  CHECK_THROWS_AS(lin.forward(Tensor::zeros({2, 8}, DType::f64)), ShapeError);
}
