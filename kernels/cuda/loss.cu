// Mean squared and absolute error: the f64 sums and the gradients, prediction and target each
// f32 or bf16.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>

#include "cuda/launch.cuh"
#include "cuda/loss.hpp"

namespace halo::cuda::raw {

namespace {

template <class P, class Q>
__global__ void diff_loss_kernel(DiffLoss kind, const P* p, const Q* t, int64_t n, double* out) {
  double acc = 0;
  HALO_GRID_LOOP(i, n) {
    const double e = double(ld(p, i)) - double(ld(t, i));
    acc += kind == DiffLoss::mse ? e * e : fabs(e);
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

template <class P, class Q>
__global__ void diff_loss_grad_kernel(DiffLoss kind, const P* p, const Q* t, P* g, int64_t n, float scale) {
  HALO_GRID_LOOP(i, n) {
    const float e = ld(p, i) - ld(t, i);
    st(g, i, kind == DiffLoss::mse ? scale * 2.f * e : (e > 0.f ? scale : e < 0.f ? -scale : 0.f));
  }
}

}  // namespace

void diff_loss(DiffLoss kind, const void* p, bool p_bf16, const void* t, bool t_bf16, int64_t n, double* out,
               void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  const unsigned b = std::min(blocks_for(n), 1024u);
  HALO_BF16_OR_F32(p_bf16, {
    using PT = T;
    HALO_BF16_OR_F32(t_bf16, diff_loss_kernel<<<b, kThreads, 0, s>>>(kind, static_cast<const PT*>(p),
                                                                       static_cast<const T*>(t), n, out));
  });
  HALO_CUDA_CHECK_LAUNCH("diff_loss");
}

void diff_loss_grad(DiffLoss kind, const void* p, bool p_bf16, const void* t, bool t_bf16, void* g, int64_t n,
                    float scale, void* stream) {
  if (n == 0) return;
  auto s = as_stream(stream);
  HALO_BF16_OR_F32(p_bf16, {
    using PT = T;
    HALO_BF16_OR_F32(t_bf16, diff_loss_grad_kernel<<<blocks_for(n), kThreads, 0, s>>>(
                                 kind, static_cast<const PT*>(p), static_cast<const T*>(t), static_cast<PT*>(g), n,
                                 scale));
  });
  HALO_CUDA_CHECK_LAUNCH("diff_loss_grad");
}

}  // namespace halo::cuda::raw
