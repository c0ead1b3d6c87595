// Matrix products on BLAS, and the dense (fully connected) layer's three products.
//
// Matrices are 2-D row-major tensors (f32 or f64); operands in another layout are copied
// to contiguous first. The fast path is cblas_{s,d}gemm (OpenBLAS); `reference::gemm` is a
// plain triple loop accumulated in double that the fast path is tested against.
#pragma once
#include "halo/tensor/tensor.hpp"

namespace halo::ops {

/// C = alpha * op(A) op(B) + beta * C, op(X) = X^T when the flag is set. C must be
/// contiguous with shape (rows of op(A), columns of op(B)); beta == 0 never reads C.
void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c);
/// op(A) op(B) as a new contiguous tensor.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

/// y = x W^T + bias: x (N, in), W (out, in), bias (out) or undefined; y (N, out).
Tensor linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias);
/// dL/dx = dL/dy W: grad_y (N, out), W (out, in) -> (N, in).
Tensor linear_backward_data(const Tensor& grad_y, const Tensor& weight);
/// Accumulates grad_weight += grad_y^T x and, when grad_bias is defined, grad_bias += the
/// column sums of grad_y.
void linear_backward_params(const Tensor& x, const Tensor& grad_y, Tensor& grad_weight, Tensor& grad_bias);

namespace reference {
void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c);
}  // namespace reference

}  // namespace halo::ops
