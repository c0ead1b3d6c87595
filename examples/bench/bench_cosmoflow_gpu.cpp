// halo-bench-cosmoflow-gpu: one CosmoFlow-128 training step (forward, MSE loss, backward,
// SGD with momentum) on one GPU, in f32 or in bf16 mixed precision; the same as
// halo-bench-cosmoflow --device cuda.
//
//   halo-bench-cosmoflow-gpu [--precision f32|bf16] [--batch N] [--steps N] [--size S] [--layers]
//
// What is timed and what --layers (--profile 1) prints: gpu_step_bench.hpp.
#include "cosmoflow_gpu_step.hpp"

int main(int argc, char** argv) { return halo::bench::cosmoflow_gpu_main(argc, argv); }
