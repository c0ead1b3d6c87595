// Launchers of the CUDA kernels behind global average pooling and dropout masks (kernels in
// global_pool.cu and dropout.cu). As in ops.hpp they take plain device pointers and the
// stream as void*; element types are f32 or bf16 storage (`bf16`) with f32 arithmetic.
#pragma once
#include <cstdint>

namespace halo::cuda::raw {

/// A dense (N, C, spatial...) tensor with S spatial points per (n, c): contiguous (the S
/// points of one channel are adjacent) or channels-last (the C channels of one point are).
struct GlobalPoolDesc {
  int64_t N = 0, C = 0, S = 1;
  bool channels_last = false;
};
/// y[n * C + c] = mean over the S points of x[n, c, :]; each output written once (no atomics),
/// summed in f64.
void global_avg_pool_forward(const void* x, void* y, bool bf16, const GlobalPoolDesc& d, void* stream);
/// dx[n, c, s] = dy[n * C + c] / S for every point, in dx's layout.
void global_avg_pool_backward(const void* dy, void* dx, bool bf16, const GlobalPoolDesc& d, void* stream);

/// Inverted-dropout mask over a dense (outer, channels, inner) tensor: element of logical
/// (contiguous) index i gets `keep` when uniform(i) >= p, else 0, with uniform(i) the value of
/// halo::CounterRng whose key() is `key` (the CPU's draw, bit for bit). channels_last: the
/// mask is stored as (outer, inner, channels).
struct DropoutDesc {
  int64_t outer = 0, channels = 1, inner = 1;
  bool channels_last = false;
};
void dropout_mask(void* mask, bool bf16, const DropoutDesc& d, uint64_t key, double p, float keep, void* stream);

}  // namespace halo::cuda::raw
