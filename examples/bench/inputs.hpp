// Benchmark inputs: reproducible random activations without a file.
#pragma once
#include <cstdint>

#include "halo/tensor/tensor.hpp"
#include "halo/util/random.hpp"

namespace halo::bench {

/// An f32 channels-last tensor of `s` with values uniform in [0, 1), the same for a seed.
inline Tensor uniform_channels_last(const Shape& s, uint64_t seed) {
  Tensor t = Tensor::empty(s, DType::f32, Device::cpu(), MemoryFormat::channels_last);
  CounterRng rng(seed);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(rng.uniform(uint64_t(i)));
  return t;
}

}  // namespace halo::bench
