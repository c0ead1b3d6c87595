// Model DAG: shapes, naming, gradients through skip connections, grad-ready hooks.
// The layers here are small test-only ones written with plain loops, so the model is
// tested on its own, independent of the library's layers.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "halo/nn/init.hpp"
#include "halo/nn/model.hpp"

using namespace halo;
using halo::testing::random_tensor;

namespace {

// y = x W with x [N, in] and W [in, out], in f64.
class TinyDense : public nn::Layer {
 public:
  TinyDense(int64_t in, int64_t out) : in_(in), out_(out) {
    add_parameter("weight", Tensor::zeros({in, out}, DType::f64));
  }
  std::string type() const override { return "TinyDense"; }
  Shape output_shape(const std::vector<Shape>& s) const override {
    expect_inputs(s, 1);
    HALO_CHECK_SHAPE(s[0].size() == 2 && s[0][1] == in_, describe(), ": expected [N,", in_, "], got ",
                     to_string(s[0]));
    return {s[0][0], out_};
  }
  Tensor forward(const std::vector<Tensor>& x) override {
    if (training()) x_ = x[0];
    const int64_t n = x[0].size(0);
    Tensor y = Tensor::zeros({n, out_}, DType::f64);
    const double* a = x[0].data<double>();
    const double* w = params_[0].value.data<double>();
    double* o = y.data<double>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < in_; ++i)
        for (int64_t j = 0; j < out_; ++j) o[r * out_ + j] += a[r * in_ + i] * w[i * out_ + j];
    return y;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    ++backward_calls;
    const int64_t n = g.size(0);
    const double* gy = g.data<double>();
    const double* a = x_.data<double>();
    const double* w = params_[0].value.data<double>();
    double* gw = params_[0].grad.data<double>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < in_; ++i)
        for (int64_t j = 0; j < out_; ++j) gw[i * out_ + j] += a[r * in_ + i] * gy[r * out_ + j];
    if (!input_needs_grad(0)) return {Tensor()};
    Tensor gx = Tensor::zeros({n, in_}, DType::f64);
    double* gxp = gx.data<double>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < in_; ++i)
        for (int64_t j = 0; j < out_; ++j) gxp[r * in_ + i] += gy[r * out_ + j] * w[i * out_ + j];
    return {gx};
  }
  double forward_flops(const std::vector<Shape>& s) const override { return 2.0 * double(s[0][0] * in_ * out_); }
  void init_parameters(uint64_t seed) override {
    nn::init::fill(params_[0].value, nn::init::Scheme::kaiming_uniform, double(in_), double(out_), seed,
                   params_[0].name);
  }
  int backward_calls = 0;

 private:
  int64_t in_, out_;
  Tensor x_;
};

// y = a + b; backward hands the same tensor to both inputs, as a real Add may.
class TinyAdd : public nn::Layer {
 public:
  std::string type() const override { return "TinyAdd"; }
  Shape output_shape(const std::vector<Shape>& s) const override {
    expect_inputs(s, 2);
    HALO_CHECK_SHAPE(s[0] == s[1], describe(), ": inputs differ: ", to_string(s[0]), " vs ", to_string(s[1]));
    return s[0];
  }
  Tensor forward(const std::vector<Tensor>& x) override {
    Tensor y = x[0].clone();
    double* o = y.data<double>();
    const double* b = x[1].data<double>();
    for (int64_t i = 0; i < y.numel(); ++i) o[i] += b[i];
    return y;
  }
  std::vector<Tensor> backward(const Tensor& g) override { return {g, g}; }
};

// y = tanh(x): makes the gradient check non-linear.
class TinyTanh : public nn::Layer {
 public:
  std::string type() const override { return "TinyTanh"; }
  Shape output_shape(const std::vector<Shape>& s) const override {
    expect_inputs(s, 1);
    return s[0];
  }
  Tensor forward(const std::vector<Tensor>& x) override {
    Tensor y = x[0].clone();
    double* o = y.data<double>();
    for (int64_t i = 0; i < y.numel(); ++i) o[i] = std::tanh(o[i]);
    if (training()) y_ = y;
    return y;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gx = g.clone();
    double* o = gx.data<double>();
    const double* y = y_.data<double>();
    for (int64_t i = 0; i < gx.numel(); ++i) o[i] *= 1 - y[i] * y[i];
    return {gx};
  }

 private:
  Tensor y_;
};

// Exposes a whole model as one layer so the shared gradient check can drive it.
class ModelAsLayer : public nn::Layer {
 public:
  explicit ModelAsLayer(nn::Model& m) : m_(m) {
    for (nn::Parameter* p : m.parameters()) params_.push_back(*p);  // tensors share storage
  }
  std::string type() const override { return "Model"; }
  Shape output_shape(const std::vector<Shape>& s) const override { return s[0]; }
  Tensor forward(const std::vector<Tensor>& x) override { return m_.forward(x); }
  std::vector<Tensor> backward(const Tensor& g) override {
    m_.backward(g);
    return {Tensor()};
  }

 private:
  nn::Model& m_;
};

// x[4] -> dense1 -> tanh1 -> dense2 -> tanh2 -> add(tanh2, tanh1) -> dense3[3]:
// tanh1 feeds two layers, so its gradient is a sum.
struct SkipNet {
  nn::Model m;
  std::shared_ptr<TinyDense> d1 = std::make_shared<TinyDense>(4, 5);
  std::shared_ptr<TinyDense> d2 = std::make_shared<TinyDense>(5, 5);
  std::shared_ptr<TinyDense> d3 = std::make_shared<TinyDense>(5, 3);
  int x, t1, t2, sum, out;
  SkipNet() {
    x = m.input({4}, "x");
    m.add(d1, x);
    t1 = m.append(std::make_shared<TinyTanh>());
    m.add(d2, t1);
    t2 = m.append(std::make_shared<TinyTanh>());
    sum = m.add(std::make_shared<TinyAdd>(), {t2, t1}, "skip");
    out = m.add(d3, sum);
    m.compile();
    m.init(42);
  }
};

}  // namespace

TEST_CASE("model: names layers and parameters, flags inputs that need no gradient", "[model]") {
  SkipNet net;
  auto& nodes = net.m.nodes();
  REQUIRE(nodes.size() == 7);
  CHECK(nodes[1].name == "tinydense1");
  CHECK(nodes[2].name == "tinytanh1");
  CHECK(nodes[3].name == "tinydense2");
  CHECK(nodes[5].name == "skip");
  CHECK(nodes[6].name == "tinydense3");
  auto ps = net.m.parameters();
  REQUIRE(ps.size() == 3);
  CHECK(ps[0]->name == "tinydense1/weight");
  CHECK(ps[1]->name == "tinydense2/weight");
  CHECK(ps[2]->name == "tinydense3/weight");
  CHECK(net.m.parameter_count() == 4 * 5 + 5 * 5 + 5 * 3);
  CHECK(net.m.output_sample_shape() == Shape{3});
  CHECK(nodes[5].sample_shape == Shape{5});
  // The first dense layer reads the model input directly: no data gradient wanted.
  CHECK_FALSE(net.d1->input_needs_grad(0));
  CHECK(net.d2->input_needs_grad(0));
  CHECK(&net.m.layer("skip") == nodes[5].layer.get());
  CHECK_THROWS_AS(net.m.layer("nope"), Error);
  // init is seeded and deterministic.
  SkipNet other;
  CHECK(halo::testing::max_abs_diff(net.d2->parameters()[0].value, other.d2->parameters()[0].value) == 0.0);
  CHECK(halo::testing::max_abs(net.d2->parameters()[0].value) > 0.0);
}

TEST_CASE("model: gradients of a DAG with a skip connection match finite differences", "[model]") {
  SkipNet net;
  ModelAsLayer whole(net.m);
  halo::testing::GradCheckOptions o;
  o.check_inputs = false;  // the model does not return input gradients
  halo::testing::check_layer_gradients(whole, {random_tensor({3, 4}, 11)}, o);
  CHECK(net.d1->backward_calls >= 1);
}

TEST_CASE("model: without the skip's second path the gradient differs (the sum is real)", "[model]") {
  // Guards the gradient check above: a model that dropped one contribution at the fork
  // would not match, so compare against a chain without the fork.
  SkipNet net;
  Tensor xin = random_tensor({2, 4}, 5);
  Tensor y = net.m.forward(xin);
  net.m.zero_grad();
  net.m.backward(random_tensor(y.shape(), 6));
  Tensor g_skip = net.d1->parameters()[0].grad.clone();

  nn::Model chain;
  auto d1 = std::make_shared<TinyDense>(4, 5), d2 = std::make_shared<TinyDense>(5, 5),
       d3 = std::make_shared<TinyDense>(5, 3);
  chain.input({4});
  chain.append(d1);
  chain.append(std::make_shared<TinyTanh>());
  chain.append(d2);
  chain.append(std::make_shared<TinyTanh>());
  chain.append(d3);
  chain.compile();
  chain.init(42);
  Tensor yc = chain.forward(xin);
  chain.backward(random_tensor(yc.shape(), 6));
  CHECK(halo::testing::max_abs_diff(g_skip, d1->parameters()[0].grad) > 1e-3);
}

TEST_CASE("model: grad-ready hooks fire per layer in reverse order with complete gradients", "[model]") {
  SkipNet net;
  std::vector<std::string> seen;
  std::vector<Tensor> at_hook;
  int id = net.m.add_grad_ready_hook([&](const std::vector<nn::Parameter*>& ready) {
    for (auto* p : ready) {
      seen.push_back(p->name);
      at_hook.push_back(p->grad.clone());
    }
  });
  int calls = 0;
  net.m.add_grad_ready_hook([&](const std::vector<nn::Parameter*>&) { ++calls; });

  Tensor y = net.m.forward(random_tensor({2, 4}, 1));
  net.m.zero_grad();
  net.m.backward(random_tensor(y.shape(), 2));
  REQUIRE(seen == std::vector<std::string>{"tinydense3/weight", "tinydense2/weight", "tinydense1/weight"});
  CHECK(calls == 3);
  // What a hook sees is final: nothing later in backward changes it.
  auto ps = net.m.parameters();
  CHECK(halo::testing::max_abs_diff(at_hook[0], ps[2]->grad) == 0.0);
  CHECK(halo::testing::max_abs_diff(at_hook[1], ps[1]->grad) == 0.0);
  CHECK(halo::testing::max_abs_diff(at_hook[2], ps[0]->grad) == 0.0);
  CHECK(halo::testing::max_abs(ps[0]->grad) > 0.0);

  auto order = net.m.grad_ready_order();
  REQUIRE(order.size() == 3);
  CHECK(order[0][0]->name == "tinydense3/weight");
  CHECK(order[2][0]->name == "tinydense1/weight");

  net.m.remove_grad_ready_hook(id);
  seen.clear();
  y = net.m.forward(random_tensor({2, 4}, 1));
  net.m.backward(random_tensor(y.shape(), 2));
  CHECK(seen.empty());
  CHECK(calls == 6);
}

TEST_CASE("model: a layer the output does not depend on still announces its parameters", "[model]") {
  nn::Model m;
  auto used = std::make_shared<TinyDense>(3, 2), dead = std::make_shared<TinyDense>(3, 4);
  int x = m.input({3});
  int out = m.add(used, x, "used");
  m.add(dead, x, "dead");
  m.set_output(out);
  m.init(1);
  std::vector<std::string> seen;
  m.add_grad_ready_hook([&](const std::vector<nn::Parameter*>& r) { seen.push_back(r[0]->name); });
  Tensor y = m.forward(random_tensor({2, 3}, 3));
  CHECK(y.shape() == Shape{2, 2});
  m.zero_grad();
  m.backward(random_tensor({2, 2}, 4));
  CHECK(seen == std::vector<std::string>{"dead/weight", "used/weight"});
  CHECK(dead->backward_calls == 0);
  CHECK(halo::testing::max_abs(dead->parameters()[0].grad) == 0.0);
}

TEST_CASE("model: compile names the layer and the shapes on a mismatch", "[model]") {
  SECTION("dense fed the wrong width") {
    nn::Model m;
    m.input({4}, "x");
    m.append(std::make_shared<TinyDense>(4, 5));
    m.append(std::make_shared<TinyDense>(6, 2), "head");
    try {
      m.compile();
      FAIL("compile accepted a 5-wide input to a 6-wide dense layer");
    } catch (const ShapeError& e) {
      std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find("TinyDense 'head'") != std::string::npos);
      CHECK(msg.find("'tinydense1' [2,5]") != std::string::npos);
    }
  }
  SECTION("add of two different shapes") {
    nn::Model m;
    int x = m.input({4}, "x");
    int a = m.add(std::make_shared<TinyDense>(4, 5), x);
    int b = m.add(std::make_shared<TinyDense>(4, 3), x);
    m.add(std::make_shared<TinyAdd>(), {a, b}, "join");
    try {
      m.compile();
      FAIL("compile accepted an add of [5] and [3]");
    } catch (const ShapeError& e) {
      std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find("TinyAdd 'join'") != std::string::npos);
      CHECK(msg.find("[2,3]") != std::string::npos);
    }
  }
}

TEST_CASE("model: rejects duplicate names, reused layers and bad inputs", "[model]") {
  nn::Model m;
  int x = m.input({4}, "x");
  auto d = std::make_shared<TinyDense>(4, 4);
  m.add(d, x, "a");
  CHECK_THROWS_AS(m.add(std::make_shared<TinyDense>(4, 4), x, "a"), Error);
  CHECK_THROWS_AS(m.add(std::make_shared<TinyDense>(4, 4), x, "x"), Error);
  CHECK_THROWS_AS(m.add(d, x, "b"), Error);
  CHECK_THROWS_AS(m.add(std::make_shared<TinyDense>(4, 4), 7, "c"), Error);
  // An explicit name that looks like a default one pushes the default on.
  m.add(std::make_shared<TinyDense>(4, 4), x, "tinydense2");
  int e = m.add(std::make_shared<TinyDense>(4, 4), x);
  CHECK(m.nodes()[size_t(e)].name == "tinydense3");
  m.set_output(e);
  m.compile();
  CHECK_THROWS_AS(m.append(std::make_shared<TinyTanh>()), Error);
  CHECK_THROWS_AS(m.forward(random_tensor({2, 5}, 1)), ShapeError);
  CHECK_THROWS_AS(m.forward(random_tensor({2, 4, 1}, 1)), ShapeError);
}

TEST_CASE("model: summary lists layers, shapes and totals", "[model]") {
  SkipNet net;
  std::string s = net.m.summary();
  INFO(s);
  for (const char* name : {"x", "tinydense1", "tinytanh2", "skip", "tinydense3", "TinyAdd", "total"})
    CHECK(s.find(name) != std::string::npos);
  CHECK(s.find("60") != std::string::npos);  // 20 + 25 + 15 parameters
  // 2*(20+25+15) = 120 FLOPs per sample.
  CHECK(net.m.forward_flops_per_sample() == 120.0);
  CHECK(s.find("0.000120") == std::string::npos);  // printed with 3 decimals
  CHECK(s.find("0.000") != std::string::npos);
}

TEST_CASE("model: eval and train propagate; eval forward cannot be backpropagated", "[model]") {
  SkipNet net;
  net.m.eval();
  CHECK_FALSE(net.m.training());
  for (auto& n : net.m.nodes())
    if (n.layer) CHECK_FALSE(n.layer->training());
  Tensor y = net.m.forward(random_tensor({2, 4}, 1));
  CHECK_THROWS_AS(net.m.backward(Tensor::zeros(y.shape(), DType::f64)), Error);
  net.m.train();
  for (auto& n : net.m.nodes())
    if (n.layer) CHECK(n.layer->training());
  y = net.m.forward(random_tensor({2, 4}, 1));
  CHECK_THROWS_AS(net.m.backward(Tensor::zeros({2, 5}, DType::f64)), ShapeError);
  net.m.backward(Tensor::zeros(y.shape(), DType::f64));
  CHECK_THROWS_AS(net.m.backward(Tensor::zeros(y.shape(), DType::f64)), Error);  // once per forward
}

TEST_CASE("model: intermediate outputs are released unless kept", "[model]") {
  SkipNet net;
  net.m.forward(random_tensor({2, 4}, 1));
  CHECK_FALSE(net.m.activation(net.t1).defined());
  CHECK(net.m.activation(net.out).defined());
  net.m.set_keep_activations(true);
  Tensor y = net.m.forward(random_tensor({2, 4}, 1));
  CHECK(net.m.activation(net.t1).defined());
  CHECK(net.m.activation(net.sum).shape() == Shape{2, 5});
  net.m.backward(Tensor::zeros(y.shape(), DType::f64));
  CHECK_FALSE(net.m.activation(net.t1).defined());  // backward lets go of them
}
