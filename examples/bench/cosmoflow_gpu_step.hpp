// One CosmoFlow training step on one GPU (gpu_step_bench.hpp): the body of
// halo-bench-cosmoflow-gpu and of halo-bench-cosmoflow --device cuda.
#pragma once
#include <random>
#include <string>
#include <vector>

#include "halo/models/cosmoflow.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/sgd.hpp"
#include "gpu_step_bench.hpp"

namespace halo::bench {

inline int cosmoflow_gpu_main(int argc, char** argv) {
  if (help(argc, argv,
           "usage: halo-bench-cosmoflow-gpu [--precision f32|bf16] [--batch 4] [--steps 10] [--size 128] [--layers] [--graph 1]\n"
           "  One CosmoFlow training step (MSE, SGD with momentum) on one GPU: median of --steps after 3 warm-up\n"
           "  steps; --layers (or --profile 1): GPU time per phase and layer from CUDA events;\n  --graph 1: the step as one CUDA graph too.\n"))
    return 0;
  GpuStepRun run;
  if (!parse_gpu_step_run(argc, argv, run)) return 2;
  const int64_t batch = int64_t(arg(argc, argv, "--batch", 4)), size = int64_t(arg(argc, argv, "--size", 128));
  if (int rc = gpu_unavailable()) return rc;

  GpuStep s;
  s.name = "cosmoflow-" + std::to_string(size);
  s.batch = batch;
  models::CosmoFlowOptions o;
  o.input_size = size;
  s.model = models::cosmoflow(o);
  s.model.init(1234);
  s.loss = std::make_unique<nn::MSELoss>();
  s.optimizer = [](std::vector<nn::Parameter*> params) {
    optim::SGDOptions so;
    so.lr = 1e-3;
    so.momentum = 0.9;
    return std::make_unique<optim::SGD>(std::move(params), so);
  };
  // Random data (never zeros: they can run faster than real data).
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> xv(size_t(batch * 4 * size * size * size)), tv(size_t(batch * 4));
  for (auto& v : xv) v = nd(rng);
  for (auto& v : tv) v = 0.5f * nd(rng);
  s.input = Tensor::from_vector(xv, {batch, 4, size, size, size});
  s.target = Tensor::from_vector(tv, {batch, 4});
  return run_gpu_step(s, run);
}

}  // namespace halo::bench
