// halo-bench-cosmoflow-gpu: one CosmoFlow-128 training step (forward, MSE loss, backward,
// SGD with momentum) on one GPU, in f32 or in bf16 mixed precision.
//
//   halo-bench-cosmoflow-gpu [--precision f32|bf16] [--batch N] [--steps N] [--size S] [--profile 1]
//
// bf16: the input volume is bf16, so every activation and activation gradient is bf16;
// parameters, their gradients and the optimizer state stay f32 (the ops cast the weights
// per call). Prints the median step time over --steps timed steps after 3 warm-up steps
// (the first ones choose cuDNN algorithms and fill the caching allocator), and samples/s.
//
// --profile 1 then runs --steps more steps with a CUDA event recorded after each phase
// (zero_grad, every layer's forward and backward, the loss and its gradient, the optimizer
// step) and prints the mean GPU time between consecutive events: the work each phase
// queued, without adding any host synchronisation inside the step. A phase whose time
// exceeds its kernels' shows the GPU waiting for the host.
#include "cosmoflow_gpu_step.hpp"

int main(int argc, char** argv) { return halo::bench::cosmoflow_gpu_main(argc, argv); }
