// One CosmoFlow training step on one GPU, timed: the body of halo-bench-cosmoflow-gpu and of
// halo-bench-cosmoflow --device cuda (see bench_cosmoflow_gpu.cpp for the options).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "halo/config.hpp"
#include "halo/cuda/runtime.hpp"

#if HALO_ENABLE_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <vector>

#include "halo/models/cosmoflow.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/sgd.hpp"
#include "args.hpp"

namespace halo::bench {

/// The GPU CosmoFlow step benchmark (halo-bench-cosmoflow-gpu, halo-bench-cosmoflow --device cuda).
inline int cosmoflow_gpu_main(int argc, char** argv) {
  if (halo::bench::help(argc, argv, "usage: halo-bench-cosmoflow-gpu [--precision f32|bf16] [--batch N] [--steps N] [--size S] [--profile 1]\n  One CosmoFlow training step on one GPU (median of --steps after 3 warm-up steps).\n")) return 0;
  std::string precision = "bf16";
  int64_t batch = 4, size = 128;
  int steps = 10;
  bool profile = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--precision") precision = argv[i + 1];
    else if (a == "--batch") batch = std::atoll(argv[i + 1]);
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
    else if (a == "--size") size = std::atoll(argv[i + 1]);
    else if (a == "--profile") profile = std::atoi(argv[i + 1]) != 0;
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!cuda::available()) {
    std::fprintf(stderr, "no CUDA GPU visible\n");
    return 77;
  }
  if (precision != "f32" && precision != "bf16") {
    std::fprintf(stderr, "--precision must be f32 or bf16\n");
    return 2;
  }
  const DType act = precision == "bf16" ? DType::bf16 : DType::f32;
  const Device dev = Device::cuda(0);

  models::CosmoFlowOptions o;
  o.input_size = size;
  nn::Model model = models::cosmoflow(o);
  model.init(1234);
  model.to(dev);
  model.train();
  optim::SGDOptions so;
  so.lr = 1e-3;
  so.momentum = 0.9;
  optim::SGD opt(model.parameters(), so);
  nn::MSELoss loss;

  // Random data (never zeros: they can run faster than real data).
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> xv(size_t(batch * 4 * size * size * size)), tv(size_t(batch * 4));
  for (auto& v : xv) v = nd(rng);
  for (auto& v : tv) v = 0.5f * nd(rng);
  const Tensor x = Tensor::from_vector(xv, {batch, 4, size, size, size})
                       .to_memory_format(MemoryFormat::channels_last)
                       .to(act)
                       .to(dev);
  const Tensor t = Tensor::from_vector(tv, {batch, 4}).to(dev);

  double last_loss = 0;
  auto step = [&] {
    opt.zero_grad();
    Tensor y = model.forward(x);
    last_loss = loss.forward(y, t);  // reads the loss back: one host sync per step, as a trainer does
    model.backward(loss.backward());
    opt.step();
    cuda::synchronize(0);
  };
  for (int i = 0; i < 3; ++i) step();
  std::vector<double> ms;
  for (int i = 0; i < steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  std::printf("cosmoflow-%lld %s batch %lld: median step %.2f ms (min %.2f, max %.2f) = %.1f samples/s, loss %.4f\n",
              (long long)size, precision.c_str(), (long long)batch, med, ms.front(), ms.back(),
              double(batch) * 1000.0 / med, last_loss);
  if (!profile) return 0;

  // Phase profile: events recorded on the stream the ops launch on, in step order.
  std::vector<cudaEvent_t> events;
  std::vector<std::string> names;
  size_t used = 0;
  auto mark = [&](const std::string& name) {
    if (used == events.size()) {
      cudaEvent_t e;
      cudaEventCreate(&e);
      events.push_back(e);
      names.emplace_back();
    }
    names[used] = name;
    cudaEventRecord(events[used++], cuda::current_stream(0));
  };
  model.set_layer_timer([&](const std::string& node, bool backward, double) {
    mark(node + (backward ? " bwd" : " fwd"));
  });
  std::vector<std::string> order;
  std::map<std::string, double> total;
  for (int s = 0; s < steps; ++s) {
    used = 0;
    mark("start");
    opt.zero_grad();
    mark("zero_grad");
    Tensor y = model.forward(x);
    last_loss = loss.forward(y, t);
    mark("loss");
    Tensor gy = loss.backward();
    mark("loss bwd");
    model.backward(gy);
    opt.step();
    mark("optimizer");
    cuda::synchronize(0);
    for (size_t k = 1; k < used; ++k) {
      float e = 0.f;
      cudaEventElapsedTime(&e, events[k - 1], events[k]);
      if (!total.count(names[k])) order.push_back(names[k]);
      total[names[k]] += double(e);
    }
  }
  model.set_layer_timer(nullptr);
  double sum = 0;
  for (const auto& n : order) sum += total[n] / steps;
  std::printf("phase profile (mean GPU ms per step over %d steps, events between phases)\n", steps);
  for (const auto& n : order)
    std::printf("  %-28s %8.3f ms  %5.1f%%\n", n.c_str(), total[n] / steps, 100.0 * total[n] / steps / sum);
  std::printf("  %-28s %8.3f ms\n", "sum", sum);
  for (auto e : events) cudaEventDestroy(e);
  return 0;
}

}  // namespace halo::bench

#else
namespace halo::bench {
inline int cosmoflow_gpu_main(int, char**) {
  std::fprintf(stderr, "the CosmoFlow GPU benchmark: this build has no CUDA (configure with -DHALO_ENABLE_CUDA=ON)\n");
  return 77;
}
}  // namespace halo::bench
#endif
