// Confusion counts for the IoU metric (declared in layer_ops.hpp). The grid's y walks the
// samples and x the pixels of one sample; each block counts into shared memory (3K counters,
// K small: 3 for DeepCAM) and adds them with one global atomic per non-zero counter, so
// the global counters do not become a hot spot.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/launch.cuh"
#include "cuda/metrics.hpp"

namespace halo::cuda::raw {

namespace {

constexpr int64_t kMaxSharedClasses = 1024;  // 3 * 1024 counters = 12 KiB of shared memory

template <class T, class L, bool Shared>
__global__ void confusion_kernel(const T* logits, const L* labels, CeDesc d, int64_t ignore_index,
                                 unsigned long long* counts, unsigned long long* first_bad) {
  extern __shared__ unsigned int local[];  // [pred K, label K, intersection K] when Shared
  const int64_t K = d.classes, S = d.spatial, N = d.batch;
  const int64_t cs = d.channels_last ? 1 : S;
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    if (Shared) {
      for (int64_t j = threadIdx.x; j < 3 * K; j += blockDim.x) local[j] = 0;
      __syncthreads();
    }
    for (int64_t s = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; s < S; s += int64_t(gridDim.x) * blockDim.x) {
      const int64_t p = n * S + s;
      const int64_t y = int64_t(labels[p]);
      if (y == ignore_index) continue;
      if (y < 0 || y >= K) {
        atomicMin(first_bad, static_cast<unsigned long long>(p));
        continue;
      }
      const int64_t base = d.channels_last ? p * K : n * K * S + s;
      int64_t best = 0;
      float bv = ld(logits, base);
      for (int64_t k = 1; k < K; ++k) {
        const float v = ld(logits, base + k * cs);
        if (v > bv) {
          bv = v;
          best = k;
        }
      }
      if (Shared) {
        atomicAdd(&local[best], 1u);
        atomicAdd(&local[K + y], 1u);
        if (best == y) atomicAdd(&local[2 * K + y], 1u);
      } else {
        atomicAdd(&counts[n * K + best], 1ull);
        atomicAdd(&counts[(N + n) * K + y], 1ull);
        if (best == y) atomicAdd(&counts[(2 * N + n) * K + y], 1ull);
      }
    }
    if (Shared) {
      __syncthreads();
      for (int64_t j = threadIdx.x; j < 3 * K; j += blockDim.x) {
        const int64_t which = j / K, k = j % K;
        if (local[j]) atomicAdd(&counts[(which * N + n) * K + k], static_cast<unsigned long long>(local[j]));
      }
      __syncthreads();  // local is cleared for the next sample only after every thread read it
    }
  }
}

template <class T, class L>
void launch(const void* logits, const void* labels, const CeDesc& d, int64_t ignore_index, int64_t* counts,
            int64_t* first_bad, cudaStream_t s) {
  const unsigned gy = unsigned(std::min<int64_t>(d.batch, 65535));
  const unsigned gx = unsigned(std::max<int64_t>(
      1, std::min<int64_t>((d.spatial + kThreads - 1) / kThreads, std::max<int64_t>(1, 2048 / int64_t(gy)))));
  auto* c = reinterpret_cast<unsigned long long*>(counts);
  auto* bad = reinterpret_cast<unsigned long long*>(first_bad);
  if (d.classes <= kMaxSharedClasses)
    confusion_kernel<T, L, true><<<dim3(gx, gy), kThreads, size_t(3 * d.classes) * sizeof(unsigned int), s>>>(
        static_cast<const T*>(logits), static_cast<const L*>(labels), d, ignore_index, c, bad);
  else
    confusion_kernel<T, L, false><<<dim3(gx, gy), kThreads, 0, s>>>(static_cast<const T*>(logits),
                                                                    static_cast<const L*>(labels), d, ignore_index,
                                                                    c, bad);
}

}  // namespace

void confusion_counts(const void* logits, bool bf16, const void* labels, bool labels_i64, const CeDesc& d,
                      int64_t ignore_index, int64_t* counts, int64_t* first_bad, void* stream) {
  if (d.batch * d.spatial == 0 || d.classes == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16) {
    if (labels_i64)
      launch<bf16_t, int64_t>(logits, labels, d, ignore_index, counts, first_bad, s);
    else
      launch<bf16_t, int32_t>(logits, labels, d, ignore_index, counts, first_bad, s);
  } else {
    if (labels_i64)
      launch<float, int64_t>(logits, labels, d, ignore_index, counts, first_bad, s);
    else
      launch<float, int32_t>(logits, labels, d, ignore_index, counts, first_bad, s);
  }
  HALO_CUDA_CHECK_LAUNCH("confusion_counts");
}

}  // namespace halo::cuda::raw
