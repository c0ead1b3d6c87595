// The cuDNN ceiling for the five CosmoFlow-128 convolutions on one GPU: the body of
// halo-bench-cudnn-conv and of halo-bench-conv --device cuda (options: batch sizes).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "halo/config.hpp"
#include "halo/cuda/runtime.hpp"

#if HALO_ENABLE_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <functional>

#include "../../kernels/cuda/conv.hpp"
#include "../../kernels/cuda/elementwise.hpp"
#include "args.hpp"

namespace halo::bench {

namespace cudnn_conv_detail {

inline float median_ms(const std::function<void()>& f, int reps) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i) f();
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a);
    f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace cudnn_conv_detail

/// The cuDNN convolution benchmark (halo-bench-cudnn-conv, halo-bench-conv --device cuda).
inline int cudnn_conv_main(int argc, char** argv) {
  using namespace cudnn_conv_detail;
  if (halo::bench::help(argc, argv, "usage: halo-bench-cudnn-conv [batch ...]   (default: 4 8)\n  The cuDNN ceiling for the five CosmoFlow-128 convolutions on one GPU.\n")) return 0;
  if (!cuda::available()) {
    std::fprintf(stderr, "halo-bench-cudnn-conv: no CUDA GPU visible\n");
    return 77;
  }
  std::vector<int> batches;
  for (int i = 1; i < argc; ++i) batches.push_back(std::atoi(argv[i]));
  if (batches.empty()) batches = {4, 8};
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("cuDNN convolutions of CosmoFlow-128 on %s\n", prop.name);
  struct Prec {
    const char* name;
    DType dt;
    bool tf32;
    MemoryFormat fmt;
  };
  // Strict f32 runs NCDHW: cuDNN offers no non-tensor-core 3-D algorithm for NDHWC f32.
  const Prec precs[] = {{"f32", DType::f32, false, MemoryFormat::contiguous},
                        {"tf32", DType::f32, true, MemoryFormat::channels_last},
                        {"bf16", DType::bf16, false, MemoryFormat::channels_last}};
  for (int batch : batches)
    for (const Prec& pr : precs) {
      std::printf("\nbatch %d %s %s\n%-6s %-22s %9s %9s %9s %8s %8s %8s\n", batch, pr.name,
                  pr.fmt == MemoryFormat::channels_last ? "channels_last" : "contiguous", "layer", "input",
                  "fwd ms", "bwd_d ms", "bwd_w ms", "fwd TF/s", "bwd_d", "bwd_w");
      double total_flop = 0, total_ms = 0;
      int64_t c = 4, s = 128;
      for (int l = 0; l < 5; ++l) {
        const int64_t k = 32 << l;
        try {
        cuda::ConvParams p;
        p.input = {batch, c, s, s, s};
        p.weight = {k, c, 3, 3, 3};
        p.padding = {1, 1, 1};
        p.dtype = pr.dt;
        p.allow_tf32 = pr.tf32;
        p.format = pr.fmt;
        cuda::ConvPlan plan(p);
        const auto fmt = pr.fmt;
        Tensor x = Tensor::empty(p.input, pr.dt, Device::cuda(), fmt);
        Tensor w = Tensor::empty(p.weight, pr.dt, Device::cuda(), fmt);
        Tensor y = Tensor::empty(plan.output_shape(), pr.dt, Device::cuda(), fmt);
        Tensor dx = Tensor::empty_like(x), dw = Tensor::empty_like(w);
        cuda::fill(x, 0.5f);  // non-zero data: zeros can run faster than real data
        cuda::fill(w, -0.01f);
        cuda::fill(y, 0.25f);
        const double fl = plan.flops();
        const float tf = median_ms([&] { plan.forward(x, w, y); }, 20);
        const float td = median_ms([&] { plan.backward_data(y, w, dx); }, 20);
        const float tw = median_ms([&] { plan.backward_filter(x, y, dw); }, 20);
        std::printf("conv%d  %-22s %9.3f %9.3f %9.3f %8.1f %8.1f %8.1f   %s\n", l + 1, to_string(p.input).c_str(), tf,
                    td, tw, fl / tf / 1e9, fl / td / 1e9, fl / tw / 1e9, plan.algorithms().c_str());
        total_flop += 3 * fl;
        total_ms += tf + td + tw;
        } catch (const std::exception& e) {
          std::printf("conv%d  failed: %s\n", l + 1, e.what());
        }
        c = k;
        s /= 2;
      }
      std::printf("all    fwd+bwd %.2f ms, %.1f TFLOP/s, %.0f samples/s (convolutions alone)\n", total_ms,
                  total_flop / total_ms / 1e9, batch / (total_ms / 1e3));
    }
  return 0;
}

}  // namespace halo::bench

#else

namespace halo::bench {
inline int cudnn_conv_main(int, char**) {
  std::fprintf(stderr, "the cuDNN convolution benchmark: this build has no CUDA backend (HALO_ENABLE_CUDA=OFF)\n");
  return 77;
}
}  // namespace halo::bench

#endif
