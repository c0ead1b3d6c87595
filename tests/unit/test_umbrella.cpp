// The umbrella header compiles on its own and the CosmoFlow builder gives the reference
// architecture (layer order, shapes, parameter count of the MLPerf model at 128^3).
#include <catch2/catch.hpp>

#include "halo/halo.hpp"

using namespace halo;

TEST_CASE("CosmoFlow-128 has the reference structure and parameter count") {
  nn::Model m = models::cosmoflow({});
  // 5 convs (Cin*27*Cout + Cout) + dense 32768->128->64->4
  int64_t expect = 0, cin = 4;
  for (int i = 0; i < 5; ++i) {
    int64_t cout = 32 << i;
    expect += cin * 27 * cout + cout;
    cin = cout;
  }
  expect += 32768 * 128 + 128 + 128 * 64 + 64 + 64 * 4 + 4;
  CHECK(m.parameter_count() == expect);
  CHECK(m.output_sample_shape() == Shape{4});
  CHECK(m.layer("conv5").parameters()[0].value.shape() == Shape{512, 256, 3, 3, 3});
  for (auto* p : m.parameters()) {
    bool dense = p->name.rfind("dense", 0) == 0 || p->name.rfind("output", 0) == 0;
    bool weight = p->name.find("/weight") != std::string::npos;
    CHECK(p->weight_decay == (dense && weight));
  }
}

TEST_CASE("CosmoFlow rejects input sizes that the five pools cannot halve") {
  models::CosmoFlowOptions o;
  o.input_size = 48;
  CHECK_THROWS_AS(models::cosmoflow(o), ConfigError);
}

TEST_CASE("CosmoFlow-32 trains: loss falls on a fixed batch") {
  models::CosmoFlowOptions o;
  o.input_size = 32;
  o.base_filters = 4;
  o.dense = {16, 8};
  o.dropout = 0.0;
  nn::Model m = models::cosmoflow(o);
  m.init(3);
  Tensor x = Tensor::empty({2, 4, 32, 32, 32});
  CounterRng rng(5);
  float* px = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) px[i] = float(rng.uniform(uint64_t(i)));
  Tensor y = Tensor::from_vector<float>({0.5f, -0.2f, 0.1f, 0.3f, -0.4f, 0.2f, 0.0f, 0.6f}, {2, 4});
  nn::MSELoss loss;
  optim::SGDOptions so;
  so.momentum = 0.9;
  optim::SGD opt(m.parameters(), so);
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    m.zero_grad();
    double l = loss.forward(m.forward(x), y);
    if (step == 0) first = l;
    last = l;
    m.backward(loss.backward());
    opt.set_lr(2e-4);  // no normalisation layers: larger steps overshoot into tanh saturation
    opt.step();
  }
  INFO("loss " << first << " -> " << last);
  CHECK(last < 0.2 * first);
}
