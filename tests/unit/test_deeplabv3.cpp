// DeepLabv3+ (the DeepCAM model): the graph has the reference's structure (resolutions at
// the flow boundaries, the low-level skip, ASPP branches, decoder), rejects inputs it
// cannot take, and trains end to end (every parameter receives a gradient).
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "gradcheck.hpp"
#include "halo/models/deeplabv3.hpp"
#include "halo/nn/conv.hpp"
#include "halo/util/error.hpp"

using namespace halo;

namespace {

models::DeepLabV3PlusOptions small() {
  models::DeepLabV3PlusOptions o;
  o.height = 32;
  o.width = 48;
  o.channel_scale = 0.0625;
  o.middle_blocks = 2;
  return o;
}

Shape node_shape(const nn::Model& m, const std::string& name) {
  const int id = m.find(name);
  REQUIRE(id >= 0);
  return m.nodes()[size_t(id)].sample_shape;
}

}  // namespace

TEST_CASE("DeepLabv3+ has the reference's resolutions and channels") {
  models::DeepLabV3PlusOptions o;  // full width, full depth: shapes only, no forward
  o.height = 64;
  o.width = 96;
  nn::Model m = models::deeplabv3_plus(o);
  CHECK(m.output_sample_shape() == Shape{3, 64, 96});
  CHECK(node_shape(m, "entry.conv1") == Shape{32, 32, 48});
  CHECK(node_shape(m, "block1.relu") == Shape{128, 16, 24});  // low-level feature, stride 4
  CHECK(node_shape(m, "block3.relu") == Shape{728, 4, 6});    // output stride 16
  CHECK(node_shape(m, "block19.relu") == Shape{728, 4, 6});   // 16 middle blocks: 4..19
  CHECK(m.find("block20.relu") < 0);
  // BatchNorm -> ReLU pairs are one fused layer named after the BatchNorm (parameter names
  // as in the reference); the ReLUs after residual adds stay separate layers.
  CHECK(node_shape(m, "exit.sep3.bn") == Shape{2048, 4, 6});
  CHECK(m.find("exit.sep3.relu") < 0);
  CHECK(m.find("block4.sep1.relu") < 0);
  {
    bool named = false;
    for (auto* p : m.parameters()) named = named || p->name == "exit.sep3.bn/weight";
    CHECK(named);
  }
  {
    int fused = 0, plain = 0;
    for (auto* bn : models::batchnorm_layers(m)) (bn->fused_relu() ? fused : plain)++;
    CHECK(fused == 52);  // entry 2, block separables 3 + 32 + 1, exit 3, ASPP 5, decoder 6
    CHECK(plain == 24);  // the last BatchNorm of each of the 20 blocks and their 4 skip BatchNorms
    CHECK(dynamic_cast<nn::BatchNormNd&>(m.layer("block4.sep2.bn")).fused_relu());
    CHECK_FALSE(dynamic_cast<nn::BatchNormNd&>(m.layer("block4.sep3.bn")).fused_relu());
  }
  int relus = 0;
  for (const auto& n : m.nodes()) relus += n.layer && n.layer->type() == "ReLU";
  CHECK(relus == 20);  // 19 block ends + the pooling branch
  CHECK(node_shape(m, "aspp.concat") == Shape{1280, 4, 6});
  CHECK(node_shape(m, "aspp.pool") == Shape{2048, 1, 1});
  CHECK(node_shape(m, "decoder.concat") == Shape{304, 16, 24});
  CHECK(node_shape(m, "decoder.up3") == Shape{256, 32, 48});
  // Depthwise convolutions are grouped per channel; the dilated exit flow keeps its grid.
  auto& dw = dynamic_cast<nn::ConvNd&>(m.layer("exit.sep2.depthwise"));
  CHECK(dw.conv_params().groups == 1536);
  CHECK(dw.conv_params().dilation[0] == 2);
  // The reference has 56,454,720 parameters at 16 input channels and 3 classes (counted
  // layer by layer from its definition, BatchNorm's affine weights included); the pooling
  // branch's per-channel scale is folded into its 1x1 convolution here: 256 fewer.
  CHECK(m.parameter_count() == 56454720 - 256);
  CHECK(models::batchnorm_layers(m).size() == 76);
}

TEST_CASE("DeepLabv3+ rejects sizes the output stride cannot take") {
  models::DeepLabV3PlusOptions o = small();
  o.height = 40;
  CHECK_THROWS_AS(models::deeplabv3_plus(o), ConfigError);
  CHECK_THROWS_WITH(models::deeplabv3_plus(o), Catch::Contains("multiples of 16"));
}

TEST_CASE("DeepLabv3+ trains end to end: every parameter gets a gradient") {
  models::DeepLabV3PlusOptions o = small();
  nn::Model m = models::deeplabv3_plus(o);
  m.init(3);
  Tensor x = halo::testing::random_tensor({2, o.in_channels, o.height, o.width}, 7, DType::f32);
  Tensor y = m.forward(x);
  REQUIRE(y.shape() == Shape{2, 3, 32, 48});
  m.zero_grad();
  m.backward(halo::testing::random_tensor(y.shape(), 8, DType::f32));
  for (auto* p : m.parameters()) {
    double norm = 0;
    for (double v : p->grad.to_vector<double>()) norm += v * v;
    INFO(p->name);
    CHECK(std::isfinite(norm));
    CHECK(norm > 0);
  }
}
