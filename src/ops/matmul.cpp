// Matrix products: shape checks naming the operands, then the kernels of the operands'
// device (op_table.hpp).
#include "halo/ops/matmul.hpp"

#include "op_table.hpp"

namespace halo::ops {

void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c) {
  HALO_CHECK_SHAPE(a.dim() == 2 && b.dim() == 2 && c.dim() == 2, "gemm: operands must be 2-D, got ", a.str(), ", ",
                   b.str(), ", ", c.str());
  matmul_kernels(a.device(), "gemm").gemm(ta, tb, alpha, a, b, beta, c);
}

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  HALO_CHECK_SHAPE(a.dim() == 2 && b.dim() == 2, "matmul: operands must be 2-D, got ", a.str(), " and ", b.str());
  Tensor c = Tensor::empty({ta ? a.size(1) : a.size(0), tb ? b.size(0) : b.size(1)}, a.dtype(), a.device());
  gemm(ta, tb, 1.0, a, b, 0.0, c);
  return c;
}

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
  HALO_CHECK_SHAPE(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "linear: input ", x.str(),
                   " does not fit weight ", w.str(), " (expected input (N, ", (w.dim() == 2 ? w.size(1) : -1), "))");
  return matmul_kernels(x.device(), "linear").linear_forward(x, w, bias);
}

Tensor linear_backward_data(const Tensor& gy, const Tensor& w) {
  HALO_CHECK_SHAPE(gy.defined(), "linear backward: output gradient is undefined");
  return matmul_kernels(gy.device(), "linear backward").linear_backward_data(gy, w);
}

void linear_backward_params(const Tensor& x, const Tensor& gy, Tensor& gw, Tensor& gb) {
  HALO_CHECK_SHAPE(x.dim() == 2 && gy.dim() == 2 && x.size(0) == gy.size(0), "linear backward: input ", x.str(),
                   " and output gradient ", gy.str(), " differ in batch size");
  matmul_kernels(x.device(), "linear backward").linear_backward_params(x, gy, gw, gb);
}

}  // namespace halo::ops
