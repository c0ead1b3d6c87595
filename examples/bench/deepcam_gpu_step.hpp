// One DeepCAM (DeepLabv3+) training step on one GPU (gpu_step_bench.hpp): the body of
// halo-bench-deepcam --device cuda. The same step as the CPU benchmark's (weighted
// cross-entropy at full resolution, LAMB) and as examples/bench/pytorch_deepcam_step.py's.
#pragma once
#include <string>
#include <vector>

#include "halo/models/deeplabv3.hpp"
#include "halo/nn/losses.hpp"
#include "halo/optim/lamb.hpp"
#include "halo/util/random.hpp"
#include "gpu_step_bench.hpp"

namespace halo::bench {

inline int deepcam_gpu_main(int argc, char** argv) {
  GpuStepRun run;
  if (!parse_gpu_step_run(argc, argv, run)) return 2;
  models::DeepLabV3PlusOptions mo;
  mo.height = int64_t(arg(argc, argv, "--height", 768));
  mo.width = int64_t(arg(argc, argv, "--width", 1152));
  mo.middle_blocks = int(arg(argc, argv, "--middle", 16));
  mo.channel_scale = arg(argc, argv, "--channel-scale", 1.0);
  const int64_t batch = int64_t(arg(argc, argv, "--batch", 2));
  if (int rc = gpu_unavailable()) return rc;

  GpuStep s;
  s.name = "deepcam-" + std::to_string(mo.height) + "x" + std::to_string(mo.width);
  s.batch = batch;
  s.model = models::deeplabv3_plus(mo);
  s.model.init(1);
  // Class weights of the order DeepCAM uses (as the CPU benchmark and the PyTorch twin).
  s.loss = std::make_unique<nn::WeightedCrossEntropy>(std::vector<double>{1.0, 20.0, 3.0});
  s.optimizer = [](std::vector<nn::Parameter*> params) {
    optim::LAMBOptions lo;
    lo.lr = 1e-3;
    lo.weight_decay = 1e-2;
    return std::make_unique<optim::LAMB>(std::move(params), lo);
  };
  s.input = Tensor::empty({batch, mo.in_channels, mo.height, mo.width});
  s.target = Tensor::empty({batch, mo.height, mo.width}, DType::i32);
  CounterRng rng(11);
  float* p = s.input.data<float>();
  for (int64_t i = 0; i < s.input.numel(); ++i) p[i] = float(rng.uniform(uint64_t(i)));
  int32_t* l = s.target.data<int32_t>();
  for (int64_t i = 0; i < s.target.numel(); ++i) l[i] = int32_t(rng.uniform(uint64_t(i) + (1ull << 40)) * 2.999);
  return run_gpu_step(s, run);
}

}  // namespace halo::bench
