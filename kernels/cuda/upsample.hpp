// Upsampling kernels (upsample.cu). As everywhere in kernels/cuda the launchers take plain device
// pointers and the stream as void* (so the op tables compile with the host compiler alone);
// element types are f32 or bf16 storage (the `bf16` flags) computed in f32, and sums accumulate
// in f64.
#pragma once
#include <cstdint>

namespace halo::cuda::raw {

/// Upsampling of (N, C, D, H, W) with explicit strides (2-D inputs use D = 1; bilinear is
/// 2-D only). Source coordinates as in halo/ops/upsample.hpp.
struct UpsampleDesc {
  int64_t N = 0, C = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t xs[5] = {}, ys[5] = {};  ///< strides of N, C, D, H, W of input and output
  bool bilinear = false;
  bool align_corners = false;
};
void upsample_forward(const void* x, void* y, bool bf16, const UpsampleDesc& d, void* stream);
/// dx (f32, input's strides, zeroed by the caller) += the gradient scattered from dy.
void upsample_backward(const void* dy, bool bf16, float* dx, const UpsampleDesc& d, void* stream);

}  // namespace halo::cuda::raw
