// Tensor-level helpers shared by the CUDA branches of the op dispatch: the stream of a
// tensor's device, dtype/layout conversions on the device, and accumulation into gradients.
#pragma once
#include "halo/tensor/tensor.hpp"

namespace halo::cuda {

/// The calling thread's current stream for t's device, as the raw launchers take it.
void* stream_of(const Tensor& t);
/// True for bf16, false for f32; throws naming `who` for any other dtype or a non-cuda tensor.
bool is_bf16(const Tensor& t, const char* who);
/// dst = src (or dst += src when `accumulate`) for f32/bf16 tensors of one shape on one GPU,
/// in any strides. Returns false (doing nothing) for other dtypes.
bool convert(Tensor& dst, const Tensor& src, bool accumulate = false);
/// t in dtype `dt` with the same layout (t itself when it already is).
Tensor cast(const Tensor& t, DType dt);
/// Fills a dense f32/bf16 tensor, or any dense tensor with zero (a memset); false otherwise.
bool fill_dense(Tensor& t, double value);

}  // namespace halo::cuda

namespace halo::cuda {
/// sum a[i] * b[i] (or sum a[i] when b is null) over two tensors of one layout, in f64.
double reduce_dot(const Tensor& a, const Tensor* b);
}  // namespace halo::cuda
