// Dropout masks on the device (pool_dropout.hpp), drawn from the same counter-based
// generator as the CPU (halo/util/random.hpp): the key is derived on the host by CounterRng
// itself, and the kernel repeats only the per-element mix, so the GPU and CPU masks of one
// (seed, step) are identical bit for bit whatever the layout or launch shape.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/check.hpp"
#include "cuda/device_access.cuh"
#include "cuda/elementwise.hpp"

namespace halo::cuda::raw {

namespace {

// halo::mix64 (SplitMix64 finaliser), the same constants and steps.
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// halo::CounterRng::uniform: 53 random bits scaled exactly into [0, 1), compared in double.
__device__ __forceinline__ bool kept(uint64_t key, uint64_t i, double p) {
  const uint64_t bits = mix64(key ^ mix64(i));
  return double(bits >> 11) * (1.0 / 9007199254740992.0) >= p;
}

// Walks the mask in storage order; `logical` is the contiguous index the CPU draws with.
template <class T>
__global__ void dropout_mask_kernel(T* mask, DropoutDesc d, uint64_t key_value, const uint64_t* key_on_device,
                                    double p, float keep) {
  const uint64_t key = key_on_device ? *key_on_device : key_value;
  const int64_t n = d.outer * d.channels * d.inner;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t logical = i;
    if (d.channels_last) {
      // Storage (o, s, c) -> logical (o, c, s).
      const int64_t c = i % d.channels, os = i / d.channels;
      const int64_t o = os / d.inner, s = os % d.inner;
      logical = (o * d.channels + c) * d.inner + s;
    }
    st(mask, i, kept(key, uint64_t(logical), p) ? keep : 0.f);
  }
}

}  // namespace

void dropout_mask(void* mask, bool bf16, const DropoutDesc& d, uint64_t key, const uint64_t* key_on_device, double p,
                  float keep, void* stream) {
  const int64_t n = d.outer * d.channels * d.inner;
  if (n == 0) return;
  const unsigned blocks = unsigned(std::max<int64_t>(1, std::min<int64_t>((n + 255) / 256, 8192)));
  auto s = static_cast<cudaStream_t>(stream);
  if (bf16)
    dropout_mask_kernel<<<blocks, 256, 0, s>>>(static_cast<bf16_t*>(mask), d, key, key_on_device, p, keep);
  else
    dropout_mask_kernel<<<blocks, 256, 0, s>>>(static_cast<float*>(mask), d, key, key_on_device, p, keep);
  HALO_CUDA_CHECK_LAUNCH("dropout_mask");
}

}  // namespace halo::cuda::raw
