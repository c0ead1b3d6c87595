// Strided copies between any two layouts of one shape, converting f32 <-> bf16 or adding:
// layout changes and casts of device tensors, and the channel ranges of concat and split.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>

#include "cuda/launch.cuh"
#include "cuda/strided_copy.hpp"

namespace halo::cuda::raw {

namespace {

template <class D, class S, class I>
__global__ void strided_copy_kernel(D* dst, const S* src, StridedDesc d, I n, bool accumulate) {
  HALO_GRID_LOOP_T(I, i, n) {
    I rest = i;
    int64_t od = 0, os = 0;
    for (int k = d.nd - 1; k >= 0; --k) {
      const I idx = rest % I(d.shape[k]);
      rest /= I(d.shape[k]);
      od += idx * d.dst_stride[k];
      os += idx * d.src_stride[k];
    }
    const float v = ld(src, os);
    st(dst, od, accumulate ? ld(dst, od) + v : v);
  }
}

}  // namespace

void strided_copy(void* dst, bool dst_bf16, const void* src, bool src_bf16, const StridedDesc& d, bool accumulate,
                  void* stream) {
  int64_t n = 1;
  for (int k = 0; k < d.nd; ++k) n *= d.shape[k];
  if (n == 0) return;
  auto s = as_stream(stream);
  int64_t span = 1;  // largest offset reached, to pick the index type
  for (int k = 0; k < d.nd; ++k)
    span += (d.shape[k] - 1) * std::max(std::abs(d.dst_stride[k]), std::abs(d.src_stride[k]));
  HALO_INDEX_TYPE(fits_int32(std::max(n, span)), {
    using Idx = I;
    HALO_BF16_OR_F32(dst_bf16, {
      using DT = T;
      HALO_BF16_OR_F32(src_bf16, strided_copy_kernel<<<blocks_for(n), kThreads, 0, s>>>(
                                     static_cast<DT*>(dst), static_cast<const T*>(src), d, Idx(n), accumulate));
    });
  });
  HALO_CUDA_CHECK_LAUNCH("strided_copy");
}

}  // namespace halo::cuda::raw
