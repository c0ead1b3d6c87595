// Matrix products on cuBLAS, row-major as everywhere in Halo.
#pragma once
#include "halo/tensor/tensor.hpp"

namespace halo::cuda {

/// C = alpha * op(A) * op(B) + beta * C for 2-D row-major cuda tensors, op(X) = X or X^T.
/// f32 runs in strict float32 unless `allow_tf32`; bf16 inputs accumulate in f32, and C may be
/// bf16 or f32 (mixed precision: bf16 activations into an f32 weight gradient).
/// Queued on the current stream of C's device.
void gemm(bool trans_a, bool trans_b, float alpha, const Tensor& a, const Tensor& b, float beta, Tensor& c,
          bool allow_tf32 = false);

}  // namespace halo::cuda
