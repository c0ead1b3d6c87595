// The cpu matmul table: BLAS (matmul.cpp) for f32/f64, and ops::reference::gemm over the
// serial reference kernel.
#include "cpu/matmul.hpp"
#include "cpu/register.hpp"
#include "dense.hpp"

namespace halo::ops::cpu_kernels {
namespace {

using detail::check_cpu;

template <bool Reference>
void gemm_impl(bool ta, bool tb, double alpha, const Tensor& a_in, const Tensor& b_in, double beta, Tensor& c) {
  HALO_CHECK_SHAPE(a_in.dtype() == b_in.dtype() && a_in.dtype() == c.dtype(), "gemm: dtypes differ: ", a_in.str(),
                   ", ", b_in.str(), ", ", c.str());
  check_cpu(a_in, "gemm");
  check_cpu(b_in, "gemm");
  check_cpu(c, "gemm");
  HALO_CHECK_SHAPE(c.is_contiguous(), "gemm: output ", c.str(), " must be contiguous");
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const int64_t m = ta ? a.size(1) : a.size(0), k = ta ? a.size(0) : a.size(1);
  const int64_t kb = tb ? b.size(1) : b.size(0), n = tb ? b.size(0) : b.size(1);
  HALO_CHECK_SHAPE(k == kb && c.size(0) == m && c.size(1) == n, "gemm: op(A) ", (ta ? "transposed " : ""),
                   to_string(a.shape()), " times op(B) ", (tb ? "transposed " : ""), to_string(b.shape()),
                   " into C ", to_string(c.shape()), " do not fit");
  if (m == 0 || n == 0) return;
  HALO_DISPATCH_FLOAT(a.dtype(), "gemm", [&] {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = c.data<T>();
    if (k == 0) {  // BLAS leaves C untouched for k == 0 in some builds; the product is empty
      for (int64_t i = 0; i < m * n; ++i) pc[i] = beta == 0 ? T(0) : T(beta) * pc[i];
    } else if (Reference) {
      kernels::cpu::ref::gemm<T>(ta, tb, m, n, k, T(alpha), pa, a.size(1), pb, b.size(1), T(beta), pc, n);
    } else {
      kernels::cpu::gemm<T>(ta, tb, m, n, k, T(alpha), pa, a.size(1), pb, b.size(1), T(beta), pc, n);
    }
  });
}

void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c) {
  gemm_impl<false>(ta, tb, alpha, a, b, beta, c);
}

// Mixed precision (bf16 activations, f32 master weights): the dense layers are small next to
// the convolutions, so they compute in f32 on the bf16 values and round their outputs to bf16.
bool mixed(const Tensor& act, const Tensor& w) { return act.dtype() == DType::bf16 && w.dtype() == DType::f32; }
Tensor to_f32(const Tensor& t) { return t.to(DType::f32); }

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
  if (mixed(x, w)) return linear_forward(to_f32(x), w, bias).to(DType::bf16);
  Tensor y = Tensor::empty({x.size(0), w.size(0)}, x.dtype(), x.device());
  double beta = 0.0;
  if (bias.defined()) {
    HALO_CHECK_SHAPE(bias.dim() == 1 && bias.size(0) == w.size(0) && bias.dtype() == w.dtype(), "linear: bias ",
                     bias.str(), " does not fit weight ", w.str());
    Tensor b = bias.contiguous();
    HALO_DISPATCH_FLOAT(y.dtype(), "linear", [&] {
      kernels::cpu::broadcast_rows<T>(y.size(0), y.size(1), b.data<T>(), y.data<T>());
    });
    beta = 1.0;
  }
  gemm(false, true, 1.0, x, w, beta, y);
  return y;
}

Tensor linear_backward_data(const Tensor& gy, const Tensor& w) {
  if (mixed(gy, w)) return ops::matmul(to_f32(gy), w).to(DType::bf16);
  return ops::matmul(gy, w);
}

void linear_backward_params(const Tensor& x, const Tensor& gy_in, Tensor& gw, Tensor& gb) {
  if (mixed(x, gw)) {
    linear_backward_params(to_f32(x), to_f32(gy_in), gw, gb);
    return;
  }
  gemm(true, false, 1.0, gy_in, x, 1.0, gw);
  if (gb.defined()) {
    Tensor gy = gy_in.contiguous();
    HALO_CHECK_SHAPE(gb.is_contiguous() && gb.numel() == gy.size(1), "linear backward: bias gradient ", gb.str(),
                     " does not fit output gradient ", gy.str());
    HALO_DISPATCH_FLOAT(gy.dtype(), "linear backward", [&] {
      kernels::cpu::column_sums_add<T>(gy.size(0), gy.size(1), gy.data<T>(), gb.data<T>());
    });
  }
}

}  // namespace
}  // namespace halo::ops::cpu_kernels

namespace halo::ops::reference {
void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c) {
  HALO_CHECK_SHAPE(a.dim() == 2 && b.dim() == 2 && c.dim() == 2, "gemm: operands must be 2-D, got ", a.str(), ", ",
                   b.str(), ", ", c.str());
  cpu_kernels::gemm_impl<true>(ta, tb, alpha, a, b, beta, c);
}
}  // namespace halo::ops::reference

namespace halo::kernels::cpu {

void register_matmul(ops::OpTable& t) {
  static const ops::MatmulKernels k = {ops::cpu_kernels::gemm, ops::cpu_kernels::linear_forward,
                                       ops::cpu_kernels::linear_backward_data, ops::cpu_kernels::linear_backward_params};
  t.matmul = &k;
}

}  // namespace halo::kernels::cpu
