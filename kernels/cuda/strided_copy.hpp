// Strided copies between layouts (strided_copy.cu): layout changes and casts of device tensors,
// and the channel ranges of concat and split. As everywhere in kernels/cuda the launchers take
// plain device pointers and the stream as void* (so the op tables compile with the host compiler
// alone); element types are f32 or bf16 storage (the `bf16` flags) computed in f32, and sums
// accumulate in f64.
#pragma once
#include <cstdint>

namespace halo::cuda::raw {

/// A strided walk over up to 8 dimensions (sizes and per-operand strides in elements).
struct StridedDesc {
  int nd = 0;
  int64_t shape[8] = {};
  int64_t dst_stride[8] = {};
  int64_t src_stride[8] = {};
};
/// dst[i] = src[i] (converting f32 <-> bf16), or dst[i] += src[i] when `accumulate`.
void strided_copy(void* dst, bool dst_bf16, const void* src, bool src_bf16, const StridedDesc& d, bool accumulate,
                  void* stream);

}  // namespace halo::cuda::raw
