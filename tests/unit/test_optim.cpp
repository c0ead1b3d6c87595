// Optimizers against hand-derived values, weight-decay flags, state round trips, clipping.
//
// The expected parameters below were computed from the textbook update formulas (quoted
// with each case) in double precision, independently of this implementation, for two
// parameters: "a/weight" (decayed) and "a/bias" (weight_decay = false), over three steps
// with the gradients in kGrads.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "halo/optim/adam.hpp"
#include "halo/optim/clip.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/optim/lars.hpp"
#include "halo/optim/sgd.hpp"
#include "halo/optim/update_rules.hpp"

using namespace halo;
using namespace halo::optim;

namespace {

using Values = std::vector<std::vector<double>>;  // per parameter
const Values kInit = {{0.5, -1.0, 2.0}, {0.1, -0.2}};
const std::vector<Values> kGrads = {{{0.1, 0.2, -0.3}, {0.05, -0.1}},
                                    {{-0.2, 0.1, 0.4}, {0.3, 0.0}},
                                    {{0.05, -0.05, 0.1}, {-0.1, 0.2}}};

struct Params {
  std::vector<nn::Parameter> store;
  explicit Params(DType dt, const Values& init = kInit) {
    const char* names[] = {"a/weight", "a/bias"};
    for (size_t k = 0; k < init.size(); ++k) {
      nn::Parameter p;
      p.name = names[k];
      p.value = Tensor::from_vector<double>(init[k], {int64_t(init[k].size())}).to(dt);
      p.grad = Tensor::zeros_like(p.value);
      p.weight_decay = (k == 0);
      store.push_back(std::move(p));
    }
  }
  std::vector<nn::Parameter*> ptrs() {
    std::vector<nn::Parameter*> v;
    for (auto& p : store) v.push_back(&p);
    return v;
  }
  void set_grads(const Values& g) {
    for (size_t k = 0; k < store.size(); ++k)
      store[k].grad.copy_(Tensor::from_vector<double>(g[k], {int64_t(g[k].size())}));
  }
};

using Factory = std::function<std::unique_ptr<Optimizer>(std::vector<nn::Parameter*>)>;

void check_trajectory(const Factory& make, const std::vector<Values>& expected) {
  for (DType dt : {DType::f64, DType::f32}) {
    const double tol = dt == DType::f64 ? 1e-13 : 2e-6;
    Params ps(dt);
    auto opt = make(ps.ptrs());
    for (size_t t = 0; t < expected.size(); ++t) {
      ps.set_grads(kGrads[t]);
      opt->step();
      CHECK(opt->step_count() == int64_t(t + 1));
      for (size_t k = 0; k < ps.store.size(); ++k) {
        auto got = ps.store[k].value.to_vector<double>();
        for (size_t i = 0; i < got.size(); ++i) {
          INFO(opt->type() << " " << name(dt) << " step " << t + 1 << " " << ps.store[k].name << "[" << i << "]");
          CHECK(got[i] == Approx(expected[t][k][i]).margin(tol).epsilon(0));
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("SGD with momentum, Nesterov and without momentum", "[optim]") {
  // d = g + wd*w (decayed parameters only); buf = mu*buf + d; w -= lr*buf
  // (Nesterov: w -= lr*(d + mu*buf)); lr 0.1, mu 0.9, wd 0.01.
  // Step 1, weight[0]: d = 0.1 + 0.01*0.5 = 0.105, w = 0.5 - 0.0105 = 0.4895.
  check_trajectory(
      [](auto p) { return std::make_unique<SGD>(p, SGDOptions{0.1, 0.9, false, 0.01}); },
      {{{0.48949999999999999, -1.0189999999999999, 2.028}, {0.095000000000000001, -0.19}},
       {{0.49956049999999996, -1.0450809999999999, 2.0111720000000002}, {0.060500000000000005, -0.18099999999999999}},
       {{0.50311538950000001, -1.0625088189999998, 1.9840156280000001}, {0.039450000000000006, -0.19289999999999999}}});
  check_trajectory(
      [](auto p) { return std::make_unique<SGD>(p, SGDOptions{0.1, 0.9, true, 0.01}); },
      {{{0.48004999999999998, -1.0361, 2.0531999999999999}, {0.090499999999999997, -0.18099999999999999}},
       {{0.50863290500000002, -1.06852141, 1.99597892}, {0.02944999999999999, -0.1729}},
       {{0.50632316198049998, -1.0781029783210001, 1.9595354680520001},
        {0.020504999999999989, -0.20361000000000001}}});
  check_trajectory(
      [](auto p) { return std::make_unique<SGD>(p, SGDOptions{0.1, 0.0, false, 0.01}); },
      {{{0.48949999999999999, -1.0189999999999999, 2.028}, {0.095000000000000001, -0.19}},
       {{0.50901050000000003, -1.0279809999999998, 1.9859720000000001}, {0.065000000000000002, -0.19}},
       {{0.50350148950000007, -1.0219530189999999, 1.9739860280000001}, {0.075000000000000011, -0.21000000000000002}}});
}

TEST_CASE("Adam (L2 in the gradient) and AdamW (decoupled decay)", "[optim]") {
  // Adam: g' = g + wd*w; m = b1*m + (1-b1)*g'; v = b2*v + (1-b2)*g'^2;
  //       w -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)
  // AdamW: w *= 1 - lr*wd first, and g' = g. lr 0.01, betas (0.9, 0.999), eps 1e-8, wd 0.1.
  AdamOptions o{0.01, 0.9, 0.999, 1e-8, 0.1};
  check_trajectory(
      [o](auto p) { return std::make_unique<Adam>(p, o); },
      {{{0.4900000006666666, -1.0099999990000001, 2.0099999990000001}, {0.090000001999999607, -0.19000000099999992}},
       {{0.4905595349903038, -1.0166257980812095, 2.0037587003070985}, {0.081558749846104339, -0.18329941940647698}},
       {{0.48825453200592439, -1.0141085964545484, 1.9966059433544636}, {0.077356657005091006, -0.1866997638470565}}});
  check_trajectory(
      [o](auto p) { return std::make_unique<AdamW>(p, o); },
      {{{0.48950000099999991, -1.0089999995000001, 2.0079999996666666}, {0.090000001999999607, -0.19000000099999992}},
       {{0.49267153603784886, -1.0173127952989636, 2.0040568956303644}, {0.081558749846104339, -0.18329941940647698}},
       {{0.49354577102898345, -1.0219320958428555, 1.9993324481035304}, {0.077356657005091006, -0.1866997638470565}}});
}

TEST_CASE("LAMB applies the per-tensor trust ratio", "[optim]") {
  // m, v as Adam (on g); u = m_hat/(sqrt(v_hat)+eps) + wd*w; r = ||w||/||u||; w -= lr*r*u.
  // lr 0.01, betas (0.9, 0.999), eps 1e-6, wd 0.01 (weight only).
  LAMBOptions o;
  o.lr = 0.01;
  o.eps = 1e-6;
  o.weight_decay = 0.01;
  check_trajectory(
      [o](auto p) { return std::make_unique<LAMB>(p, o); },
      {{{0.48659414766198161, -1.013205829694217, 2.0130724590333489}, {0.098418869075511145, -0.19841885326436001}},
       {{0.49481542679226964, -1.0341903865018574, 2.0082102569224545}, {0.096684100392866443, -0.19704182416887953}},
       {{0.4995798353573469, -1.0542009391279268, 1.9976457766021725}, {0.094977901482997409, -0.198422481568099}}});

  SECTION("zero weights or zero update fall back to a ratio of 1") {
    Params ps(DType::f64, {{0.0, 0.0, 0.0}, {0.1, -0.2}});
    LAMB opt(ps.ptrs(), o);
    ps.set_grads({{0.1, 0.2, -0.3}, {0.0, 0.0}});
    opt.step();
    CHECK(opt.last_trust_ratios()[0] == 1.0);  // ||w|| = 0
    CHECK(opt.last_trust_ratios()[1] == 1.0);  // ||u|| = 0
    // With a ratio of 1 the first step is lr * sign(g) (up to eps).
    auto w = ps.store[0].value.to_vector<double>();
    CHECK(w[0] == Approx(-0.01).epsilon(1e-4));
    CHECK(w[2] == Approx(0.01).epsilon(1e-4));
  }
}

TEST_CASE("LARS adapts decayed parameters and leaves the others plain momentum SGD", "[optim]") {
  // Decayed: local = eta*||w|| / (||g|| + wd*||w||); v = mu*v + lr*local*(g + wd*w); w -= v.
  // Not decayed: v = mu*v + lr*g; w -= v. lr 0.1, mu 0.9, wd 0.01, eta 0.001.
  LARSOptions o{0.1, 0.9, 0.01, 0.001, 0.0};
  check_trajectory(
      [o](auto p) { return std::make_unique<LARS>(p, o); },
      {{{0.49993941118620017, -1.0001096369011615, 2.0001615701701327}, {0.095000000000000001, -0.19}},
       {{0.49997774546500029, -1.0002511698620948, 2.0001069679511172}, {0.060499999999999998, -0.18099999999999999}},
       {{0.49992556099684277, -1.0002839793829674, 1.9998686918975355}, {0.039449999999999999, -0.19289999999999999}}});
}

TEST_CASE("weight decay touches only parameters flagged for it", "[optim]") {
  // With zero gradients, only decay can move a parameter.
  std::vector<Factory> makers = {
      [](auto p) { return std::make_unique<SGD>(p, SGDOptions{0.1, 0.9, false, 0.1}); },
      [](auto p) { return std::make_unique<Adam>(p, AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.1}); },
      [](auto p) { return std::make_unique<AdamW>(p, AdamOptions{0.1, 0.9, 0.999, 1e-8, 0.1}); },
      [](auto p) {
        LAMBOptions o;
        o.weight_decay = 0.1;
        return std::make_unique<LAMB>(p, o);
      },
      [](auto p) { return std::make_unique<LARS>(p, LARSOptions{0.1, 0.9, 0.1, 0.001, 0.0}); },
  };
  for (auto& make : makers) {
    Params ps(DType::f64);
    auto opt = make(ps.ptrs());
    INFO(opt->type());
    ps.set_grads({{0, 0, 0}, {0, 0}});
    opt->step();
    opt->step();
    auto w = ps.store[0].value.to_vector<double>();
    auto b = ps.store[1].value.to_vector<double>();
    CHECK(std::abs(w[0]) < 0.5);  // shrunk towards zero
    CHECK(std::abs(w[2]) < 2.0);
    CHECK(b == kInit[1]);  // untouched
  }
}

TEST_CASE("optimizer state round-trips through its named export", "[optim]") {
  std::vector<Factory> makers = {
      [](auto p) { return std::make_unique<SGD>(p, SGDOptions{0.1, 0.9, true, 0.01}); },
      [](auto p) { return std::make_unique<Adam>(p, AdamOptions{0.01, 0.9, 0.999, 1e-8, 0.1}); },
      [](auto p) { return std::make_unique<AdamW>(p, AdamOptions{0.01, 0.9, 0.999, 1e-8, 0.1}); },
      [](auto p) { return std::make_unique<LAMB>(p, LAMBOptions{}); },
      [](auto p) { return std::make_unique<LARS>(p, LARSOptions{}); },
  };
  for (auto& make : makers) {
    Params straight(DType::f32), resumed(DType::f32);
    auto a = make(straight.ptrs());
    auto b = make(resumed.ptrs());
    INFO(a->type());
    a->set_schedule(linear_warmup(4, 0.05));
    for (int t = 0; t < 2; ++t) {
      straight.set_grads(kGrads[size_t(t)]);
      a->step();
    }
    StateDict st = a->state();
    CHECK(st.count("step"));
    CHECK(st.at("step").item() == 2.0);
    if (a->type() == "SGD" || a->type() == "LARS") {
      CHECK(st.count("a/weight/momentum"));
      CHECK(st.count("a/bias/momentum"));
    } else {
      CHECK(st.count("a/weight/exp_avg"));
      CHECK(st.count("a/bias/exp_avg_sq"));
    }
    // A fresh optimizer over parameters restored to the same values continues identically.
    for (size_t k = 0; k < 2; ++k) resumed.store[k].value.copy_(straight.store[k].value);
    b->set_schedule(linear_warmup(4, 0.05));
    b->load_state(st);
    CHECK(b->step_count() == 2);
    for (int t = 2; t < 3; ++t) {
      straight.set_grads(kGrads[size_t(t)]);
      resumed.set_grads(kGrads[size_t(t)]);
      a->step();
      b->step();
    }
    for (size_t k = 0; k < 2; ++k)
      CHECK(straight.store[k].value.to_vector<float>() == resumed.store[k].value.to_vector<float>());
    CHECK(a->lr() == b->lr());
  }
}

TEST_CASE("loading state from another optimizer or model fails clearly", "[optim]") {
  Params ps(DType::f64);
  SGD sgd(ps.ptrs(), SGDOptions{0.1, 0.9, false, 0.0});
  Adam adam(ps.ptrs(), AdamOptions{});
  ps.set_grads(kGrads[0]);
  adam.step();
  StateDict st = adam.state();
  CHECK_THROWS_WITH(sgd.load_state(st), Catch::Contains("/exp_avg") && Catch::Contains("SGD"));
  StateDict missing = st;
  missing.erase("a/bias/exp_avg");
  CHECK_THROWS_WITH(adam.load_state(missing), Catch::Contains("a/bias/exp_avg"));
  StateDict wrong = st;
  wrong["a/weight/exp_avg"] = Tensor::zeros({2}, DType::f64);
  CHECK_THROWS_AS(adam.load_state(wrong), ShapeError);
  CHECK_THROWS_WITH(adam.load_state(StateDict{}), Catch::Contains("step"));
}

TEST_CASE("optimizers reject unnamed or repeated parameters and bad options", "[optim]") {
  Params ps(DType::f64);
  auto v = ps.ptrs();
  v.push_back(v[0]);
  CHECK_THROWS_AS(SGD(v, SGDOptions{}), Error);
  ps.store[1].name = "";
  CHECK_THROWS_AS(SGD(ps.ptrs(), SGDOptions{}), Error);
  ps.store[1].name = "a/bias";
  CHECK_THROWS_AS(SGD(ps.ptrs(), SGDOptions{0.1, 0.0, true, 0.0}), ConfigError);
  CHECK_THROWS_AS(Adam(ps.ptrs(), AdamOptions{0.1, 1.0, 0.999, 1e-8, 0}), ConfigError);
  CHECK_THROWS_AS(SGD(ps.ptrs(), SGDOptions{-1.0, 0.0, false, 0.0}), ConfigError);
}

TEST_CASE("the schedule sets each step's learning rate", "[optim]") {
  Params ps(DType::f64, {{1.0}, {1.0}});
  SGD opt(ps.ptrs(), SGDOptions{123.0, 0.0, false, 0.0});
  opt.set_schedule(multistep(0.5, {1, 2}, 0.1));
  const double expected_lr[] = {0.5, 0.05, 0.005};
  double w = 1.0;
  for (int t = 0; t < 3; ++t) {
    ps.set_grads({{1.0}, {1.0}});
    opt.step();
    CHECK(opt.lr() == Approx(expected_lr[t]));
    w -= expected_lr[t];
    CHECK(ps.store[0].value.item() == Approx(w));
  }
}

TEST_CASE("global-norm clipping", "[optim]") {
  Params ps(DType::f64);
  // norm = sqrt(3^2 + 4^2 + 0 + 12^2 + 0) = 13
  ps.set_grads({{3.0, 4.0, 0.0}, {12.0, 0.0}});
  CHECK(global_grad_norm(ps.ptrs()) == Approx(13.0));
  CHECK(clip_grad_norm(ps.ptrs(), 6.5) == Approx(13.0));
  CHECK(ps.store[0].grad.to_vector<double>() == std::vector<double>{1.5, 2.0, 0.0});
  CHECK(ps.store[1].grad.to_vector<double>() == std::vector<double>{6.0, 0.0});
  CHECK(global_grad_norm(ps.ptrs()) == Approx(6.5).epsilon(1e-15));

  // Below the limit: returned norm, gradients untouched.
  CHECK(clip_grad_norm(ps.ptrs(), 100.0) == Approx(6.5));
  CHECK(ps.store[0].grad.to_vector<double>() == std::vector<double>{1.5, 2.0, 0.0});

  // f32 and a non-finite norm.
  Params pf(DType::f32);
  pf.set_grads({{3.0, 4.0, 0.0}, {12.0, 0.0}});
  clip_grad_norm(pf.ptrs(), 1.0);
  CHECK(global_grad_norm(pf.ptrs()) == Approx(1.0).epsilon(1e-6));
  pf.set_grads({{INFINITY, 4.0, 0.0}, {1.0, 0.0}});
  CHECK_FALSE(std::isfinite(clip_grad_norm(pf.ptrs(), 1.0)));
  CHECK(pf.store[0].grad.to_vector<double>()[1] == 4.0);
  CHECK_THROWS_AS(clip_grad_norm(pf.ptrs(), 0.0), ConfigError);
}

TEST_CASE("large tensors (threaded loops and reductions) match a plain double loop", "[optim]") {
  // 50,000 elements take the OpenMP path with its reductions; compare three LAMB and LARS
  // steps on random f32 data with the formulas evaluated serially in double.
  const int64_t n = 50000;
  std::vector<double> w0(n), gr(n);
  for (int64_t i = 0; i < n; ++i) {
    w0[size_t(i)] = std::sin(0.37 * double(i));
    gr[size_t(i)] = 0.1 * std::cos(1.3 * double(i) + 0.2);
  }
  auto make_param = [&]() {
    nn::Parameter p;
    p.name = "big/weight";
    p.value = Tensor::from_vector<double>(w0, {n}).to(DType::f32);
    p.grad = Tensor::from_vector<double>(gr, {n}).to(DType::f32);
    return p;
  };
  auto norm = [](const std::vector<double>& x) {
    double s = 0;
    for (double v : x) s += v * v;
    return std::sqrt(s);
  };

  SECTION("LAMB") {
    nn::Parameter p = make_param();
    LAMBOptions o;
    o.lr = 0.01;
    o.weight_decay = 0.01;
    LAMB opt({&p}, o);
    std::vector<double> w = w0, m(n, 0.0), v(n, 0.0), u(n);
    for (int t = 1; t <= 3; ++t) {
      opt.step();
      for (int64_t i = 0; i < n; ++i) {
        m[size_t(i)] = 0.9 * m[size_t(i)] + 0.1 * gr[size_t(i)];
        v[size_t(i)] = 0.999 * v[size_t(i)] + 0.001 * gr[size_t(i)] * gr[size_t(i)];
        u[size_t(i)] = (m[size_t(i)] / (1 - std::pow(0.9, t))) /
                           (std::sqrt(v[size_t(i)] / (1 - std::pow(0.999, t))) + 1e-6) +
                       0.01 * w[size_t(i)];
      }
      const double r = norm(w) / norm(u);
      CHECK(opt.last_trust_ratios()[0] == Approx(r).epsilon(1e-5));
      for (int64_t i = 0; i < n; ++i) w[size_t(i)] -= 0.01 * r * u[size_t(i)];
    }
    auto got = p.value.to_vector<double>();
    double err = 0;
    for (int64_t i = 0; i < n; ++i) err = std::max(err, std::abs(got[size_t(i)] - w[size_t(i)]));
    CHECK(err < 1e-5);
  }
  SECTION("LARS") {
    nn::Parameter p = make_param();
    LARSOptions o{0.5, 0.9, 0.001, 0.02, 0.0};
    LARS opt({&p}, o);
    std::vector<double> w = w0, v(n, 0.0);
    for (int t = 1; t <= 3; ++t) {
      opt.step();
      const double local = 0.02 * norm(w) / (norm(gr) + 0.001 * norm(w));
      CHECK(opt.last_local_lr()[0] == Approx(local).epsilon(1e-5));
      for (int64_t i = 0; i < n; ++i) {
        v[size_t(i)] = 0.9 * v[size_t(i)] + 0.5 * local * (gr[size_t(i)] + 0.001 * w[size_t(i)]);
        w[size_t(i)] -= v[size_t(i)];
      }
    }
    auto got = p.value.to_vector<double>();
    double err = 0;
    for (int64_t i = 0; i < n; ++i) err = std::max(err, std::abs(got[size_t(i)] - w[size_t(i)]));
    CHECK(err < 1e-5);
  }
}

TEST_CASE("sgd_update_many is sgd_update per parameter, each with its own weight decay and buffer") {
  SgdStep s;
  s.lr = 0.1;
  s.momentum = 0.9;
  s.nesterov = true;
  std::vector<Tensor> w, g, b, w_ref, b_ref;
  for (int i = 0; i < 5; ++i) {
    const int64_t n = 3 + 2 * i;
    w.push_back(Tensor::full({n}, 1.0 + i));
    g.push_back(Tensor::full({n}, 0.5 - 0.25 * i));
    b.push_back(Tensor::full({n}, 0.125 * i));
  }
  for (int i = 0; i < 5; ++i) {
    w_ref.push_back(w[size_t(i)].clone());
    b_ref.push_back(b[size_t(i)].clone());
  }
  std::vector<SgdItem> items;
  for (size_t i = 0; i < 5; ++i) {
    const bool momentum = i != 3;
    items.push_back({&w[i], &g[i], momentum ? &b[i] : nullptr, 0.01 * double(i)});
    SgdStep one = s;
    one.weight_decay = 0.01 * double(i);
    one.momentum = momentum ? s.momentum : 0.0;
    sgd_update(w_ref[i], g[i], momentum ? &b_ref[i] : nullptr, one);
  }
  sgd_update_many(items, s);
  for (size_t i = 0; i < 5; ++i) {
    CHECK(w[i].to_vector<float>() == w_ref[i].to_vector<float>());
    CHECK(b[i].to_vector<float>() == b_ref[i].to_vector<float>());
  }
  CHECK(w[0].to_vector<float>()[0] != 1.0f);  // it did update
  Tensor bad = Tensor::zeros({2});
  std::vector<SgdItem> wrong{{&w[0], &bad, nullptr, 0.0}};
  CHECK_THROWS_WITH(sgd_update_many(wrong, s), Catch::Contains("does not match the parameter"));
}
