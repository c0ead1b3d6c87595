// The epilogue of convolutions and linear layers and their bias-gradient sums (conv_epilogue.cu).
// As everywhere in kernels/cuda the launchers take plain device pointers and the stream as void*
// (so the op tables compile with the host compiler alone); element types are f32 or bf16 storage
// (the `bf16` flags) computed in f32, and sums accumulate in f64.
#pragma once
#include <cstdint>

#include "halo/ops/activation.hpp"

namespace halo::cuda::raw {

/// In place over a dense (N, C, ...) tensor: y = act(y + bias[c]); the channel of flat index
/// i is (i / inner) % C (inner = 1 for channels-last or (rows, C) matrices). bias may be null.
void bias_activation(void* y, bool bf16, const float* bias, int64_t n, int64_t C, int64_t inner,
                     ops::Activation a, float slope, void* stream);
/// out[c] += sum of g over every flat index of channel c (same channel rule as above).
void channel_sums_add(const void* g, bool bf16, int64_t n, int64_t C, int64_t inner, float* out, void* stream);

}  // namespace halo::cuda::raw
