// Weighted cross-entropy (declared in layer_ops.hpp): one thread per pixel walks its K
// logits three times (maximum, normaliser, gradient), in f32 with the maximum subtracted so
// exp never overflows; the loss and weight sums accumulate in f64, one atomic per block.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/launch.cuh"
#include "cuda/loss.hpp"

namespace halo::cuda::raw {

namespace {

template <class T, class L>
__global__ void cross_entropy_kernel(const T* logits, const L* labels, CeDesc d, const double* weights,
                                     int64_t ignore_index, double* sums, unsigned long long* first_bad, T* grad,
                                     float scale, const double* normaliser) {
  if (normaliser) scale = normaliser[1] > 0 ? float(double(scale) / normaliser[1]) : 0.f;
  const int64_t K = d.classes, S = d.spatial, pixels = d.batch * S;
  const int64_t cs = d.channels_last ? 1 : S;
  double loss = 0, wsum = 0;
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < pixels; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = d.channels_last ? p * K : (p / S) * K * S + p % S;
    const int64_t y = int64_t(labels[p]);
    if (y == ignore_index) {
      if (grad)
        for (int64_t k = 0; k < K; ++k) st(grad, base + k * cs, 0.f);
      continue;
    }
    if (y < 0 || y >= K) {
      atomicMin(first_bad, static_cast<unsigned long long>(p));
      // Zero, not left unwritten: a caller that reports the label later (a captured step)
      // must not train on whatever the buffer held.
      if (grad)
        for (int64_t k = 0; k < K; ++k) st(grad, base + k * cs, 0.f);
      continue;
    }
    float mx = ld(logits, base);
    for (int64_t k = 1; k < K; ++k) mx = fmaxf(mx, ld(logits, base + k * cs));
    float z = 0.f;
    for (int64_t k = 0; k < K; ++k) z += expf(ld(logits, base + k * cs) - mx);
    const float log_z = logf(z);
    const double w = weights ? weights[y] : 1.0;
    loss += w * double(log_z - (ld(logits, base + y * cs) - mx));
    wsum += w;
    if (grad) {
      const float f = scale * float(w);
      for (int64_t k = 0; k < K; ++k) {
        const float prob = expf(ld(logits, base + k * cs) - mx - log_z);
        st(grad, base + k * cs, f * (prob - (k == y ? 1.f : 0.f)));
      }
    }
  }
  block_sum2(loss, wsum);
  if (threadIdx.x == 0) {
    atomicAdd(&sums[0], loss);
    atomicAdd(&sums[1], wsum);
  }
}

template <class T>
void launch(const void* logits, const void* labels, bool labels_i64, const CeDesc& d, const double* weights,
            int64_t ignore_index, double* sums, int64_t* first_bad, void* grad, float scale, cudaStream_t s,
            const double* normaliser) {
  const int64_t pixels = d.batch * d.spatial;
  const unsigned blocks = unsigned(std::max<int64_t>(1, std::min<int64_t>((pixels + kThreads - 1) / kThreads, 4096)));
  // Pixel indices are non-negative, so the signed minimum is the unsigned one.
  auto* bad = reinterpret_cast<unsigned long long*>(first_bad);
  if (labels_i64)
    cross_entropy_kernel<<<blocks, kThreads, 0, s>>>(static_cast<const T*>(logits), static_cast<const int64_t*>(labels),
                                                     d, weights, ignore_index, sums, bad, static_cast<T*>(grad), scale,
                                                     normaliser);
  else
    cross_entropy_kernel<<<blocks, kThreads, 0, s>>>(static_cast<const T*>(logits), static_cast<const int32_t*>(labels),
                                                     d, weights, ignore_index, sums, bad, static_cast<T*>(grad), scale,
                                                     normaliser);
}

}  // namespace

void cross_entropy(const void* logits, bool bf16, const void* labels, bool labels_i64, const CeDesc& d,
                   const double* weights, int64_t ignore_index, double* sums, int64_t* first_bad, void* grad,
                   float scale, void* stream, const double* normaliser) {
  if (d.batch * d.spatial == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16)
    launch<bf16_t>(logits, labels, labels_i64, d, weights, ignore_index, sums, first_bad, grad, scale, s, normaliser);
  else
    launch<float>(logits, labels, labels_i64, d, weights, ignore_index, sums, first_bad, grad, scale, s, normaliser);
  HALO_CUDA_CHECK_LAUNCH("cross_entropy");
}

}  // namespace halo::cuda::raw
