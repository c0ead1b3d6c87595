// LAMB, LARS and Adam/AdamW updates on the GPU against the CPU rules on random f32 tensors:
// weights, state and the returned trust ratios over several steps.
#include <cmath>
#include <limits>
#include <vector>

#include "cuda_test_util.hpp"
#include "gpu_test_skip.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/optim/update_rules.hpp"

using namespace halo;
using namespace halo_cuda_test;

namespace {
struct State {
  Tensor w, m, v;
};
State make_state(int64_t n, uint32_t seed) {
  std::vector<float> v = random_tensor({n}, seed + 2, MemoryFormat::contiguous, 0.f, 0.1f).to_vector<float>();
  for (auto& e : v) e = e * e;  // second moments are non-negative
  return {random_tensor({n}, seed), random_tensor({n}, seed + 1, MemoryFormat::contiguous, 0.f, 0.1f),
          Tensor::from_vector(v, {n})};
}
State to_gpu(const State& s) { return {s.w.to(gpu), s.m.to(gpu), s.v.to(gpu)}; }
}  // namespace

TEST_CASE("cuda LAMB update matches the CPU, trust ratio included", "[optim][gpu]") {
  for (double max_trust : {0.0, 0.5}) {
    for (double wd : {0.0, 0.01}) {
      State c = make_state(5000, 80);
      State d = to_gpu(c);
      optim::LambStep s;
      s.lr = 0.01;
      s.weight_decay = wd;
      s.max_trust = max_trust;
      for (int step = 1; step <= 3; ++step) {
        s.bias1 = 1 - std::pow(s.beta1, step);
        s.bias2 = 1 - std::pow(s.beta2, step);
        const Tensor g = random_tensor({5000}, uint32_t(90 + step));
        const double tc = optim::lamb_update(c.w, g, c.m, c.v, s);
        const double td = optim::lamb_update(d.w, g.to(gpu), d.m, d.v, s);
        CHECK(td == Approx(tc).epsilon(1e-5));
        CHECK(rel_err(d.w, c.w) < 1e-5);
        CHECK(rel_err(d.m, c.m) < 1e-6);
        CHECK(rel_err(d.v, c.v) < 1e-6);
      }
    }
  }
}

TEST_CASE("cuda LARS update matches the CPU, with and without adaptation", "[optim][gpu]") {
  for (bool adapt : {true, false}) {
    State c = make_state(3000, 100);
    State d = to_gpu(c);
    optim::LarsStep s;
    s.lr = 0.5;
    s.weight_decay = 5e-4;
    s.trust_coefficient = 0.02;
    s.eps = 1e-9;
    s.adapt = adapt;
    for (int step = 0; step < 3; ++step) {
      const Tensor g = random_tensor({3000}, uint32_t(110 + step));
      const double lc = optim::lars_update(c.w, g, c.m, s);
      const double ld = optim::lars_update(d.w, g.to(gpu), d.m, s);
      CHECK(ld == Approx(lc).epsilon(1e-6));
      CHECK(rel_err(d.w, c.w) < 1e-5);
      CHECK(rel_err(d.m, c.m) < 1e-5);
    }
  }
}

TEST_CASE("cuda Adam and AdamW updates match the CPU over several steps", "[optim][gpu]") {
  for (bool decoupled : {false, true}) {
    State c = make_state(4000, 120);
    State d = to_gpu(c);
    optim::AdamStep s;
    s.lr = 1e-3;
    s.weight_decay = 0.05;
    s.decoupled = decoupled;
    for (int step = 1; step <= 3; ++step) {
      s.bias1 = 1 - std::pow(s.beta1, step);
      s.bias2 = 1 - std::pow(s.beta2, step);
      const Tensor g = random_tensor({4000}, uint32_t(130 + step));
      optim::adam_update(c.w, g, c.m, c.v, s);
      optim::adam_update(d.w, g.to(gpu), d.m, d.v, s);
      CHECK(rel_err(d.w, c.w) < 1e-5);
      CHECK(rel_err(d.m, c.m) < 1e-6);
      CHECK(rel_err(d.v, c.v) < 1e-6);
    }
  }
}

TEST_CASE("cuda SGD over many parameters in one launch matches the CPU rule per parameter", "[optim][gpu]") {
  // 150 parameters (three launches of at most 64), of 1 to 70,000 elements, each with its own
  // weight decay, some without momentum buffers; momentum with and without Nesterov.
  for (bool nesterov : {false, true}) {
    optim::SgdStep s;
    s.lr = 0.05;
    s.momentum = 0.9;
    s.nesterov = nesterov;
    std::vector<Tensor> w_cpu, g_cpu, b_cpu, w_gpu, g_gpu, b_gpu;
    std::vector<double> wd;
    for (int i = 0; i < 150; ++i) {
      const int64_t n = int64_t(1) + (int64_t(i) * 7919) % 70000;
      w_cpu.push_back(random_tensor({n}, uint32_t(3 * i)));
      g_cpu.push_back(random_tensor({n}, uint32_t(3 * i + 1)));
      b_cpu.push_back(random_tensor({n}, uint32_t(3 * i + 2)));
      wd.push_back(i % 3 == 0 ? 0.0 : 1e-3 * i);
    }
    for (size_t i = 0; i < w_cpu.size(); ++i) {
      w_gpu.push_back(w_cpu[i].to(gpu));
      g_gpu.push_back(g_cpu[i].to(gpu));
      b_gpu.push_back(b_cpu[i].to(gpu));
    }
    std::vector<optim::SgdItem> items;
    for (size_t i = 0; i < w_cpu.size(); ++i) {
      const bool momentum = i % 5 != 4;
      items.push_back({&w_gpu[i], &g_gpu[i], momentum ? &b_gpu[i] : nullptr, wd[i]});
      optim::SgdStep one = s;
      one.weight_decay = wd[i];
      one.momentum = momentum ? s.momentum : 0.0;
      optim::sgd_update(w_cpu[i], g_cpu[i], momentum ? &b_cpu[i] : nullptr, one);
    }
    // Items without a buffer take the momentum-free rule in the same launch.
    optim::sgd_update_many(items, s);
    for (size_t i = 0; i < w_cpu.size(); ++i) {
      INFO("parameter " << i << ", nesterov " << nesterov);
      CHECK(rel_err(w_gpu[i], w_cpu[i]) < 1e-6);
      if (i % 5 != 4) CHECK(rel_err(b_gpu[i], b_cpu[i]) < 1e-6);
    }
  }
}

TEST_CASE("the LAMB optimizer on the GPU keeps its trust ratios on the device and matches the CPU", "[optim][gpu]") {
  // On a GPU the ratio is formed by the kernels (no host synchronisation per parameter) and
  // read back only when last_trust_ratios() is asked for; weights and ratios as on the CPU,
  // a zero parameter (ratio 1) included.
  std::vector<nn::Parameter> cpu(3), dev(3);
  const int64_t sizes[] = {7, 4000, 300};
  for (size_t i = 0; i < 3; ++i) {
    cpu[i].name = "p" + std::to_string(i) + "/weight";
    cpu[i].value = i == 2 ? Tensor::zeros({sizes[i]}) : random_tensor({sizes[i]}, uint32_t(200 + i));
    cpu[i].grad = Tensor::zeros({sizes[i]});
    dev[i].name = cpu[i].name;
    dev[i].value = cpu[i].value.to(gpu);
    dev[i].grad = cpu[i].grad.to(gpu);
  }
  optim::LAMBOptions o;
  o.lr = 0.01;
  o.weight_decay = 0.01;
  optim::LAMB a({&cpu[0], &cpu[1], &cpu[2]}, o), b({&dev[0], &dev[1], &dev[2]}, o);
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < 3; ++i) {
      const Tensor g = random_tensor({sizes[i]}, uint32_t(300 + 10 * step + i));
      cpu[i].grad.copy_(g);
      dev[i].grad.copy_(g.to(gpu));
    }
    a.step();
    b.step();
    const std::vector<double> ra = a.last_trust_ratios(), rb = b.last_trust_ratios();
    for (size_t i = 0; i < 3; ++i) {
      INFO("step " << step << ", parameter " << i);
      CHECK(rb[i] == Approx(ra[i]).epsilon(1e-5));
      CHECK(rel_err(dev[i].value, cpu[i].value) < 1e-5);
    }
    CHECK(rb[2] == 1.0);  // ||w|| = 0
  }
}

TEST_CASE("cuda sum of squares over a list of tensors in one reduction equals the CPU's", "[optim][gpu]") {
  // The gradient norm and the finiteness check read all gradients with one synchronisation.
  std::vector<Tensor> host, dev;
  for (int i = 0; i < 40; ++i) {
    host.push_back(random_tensor({int64_t(1 + 37 * i)}, uint32_t(100 + i)));
    dev.push_back(host.back().to(gpu));
  }
  std::vector<const Tensor*> hp, dp;
  double per_tensor = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    hp.push_back(&host[i]);
    dp.push_back(&dev[i]);
    per_tensor += optim::sum_squares(host[i]);
  }
  CHECK(optim::sum_squares(dp) == Approx(optim::sum_squares(hp)).epsilon(1e-12));
  CHECK(optim::sum_squares(hp) == Approx(per_tensor).epsilon(1e-12));
  dev[17].fill_(std::numeric_limits<double>::infinity());
  CHECK_FALSE(std::isfinite(optim::sum_squares(dp)));
}
