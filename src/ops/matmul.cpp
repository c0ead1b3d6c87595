// Dispatch of the matrix products: shape checks naming the operands, then BLAS.
#include "halo/ops/matmul.hpp"

#include "cpu/matmul.hpp"
#include "dense.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/gemm.hpp"
#include "cuda/ops.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::ops {

using detail::check_cpu;

namespace {

#if HALO_ENABLE_CUDA
// Mixed precision: f32 master weights meet bf16 activations here; the weight is cast to the
// activations' dtype for the product (weights are small next to the activations).
Tensor as_compute(const Tensor& t, DType compute) { return cuda::cast(t.contiguous(), compute); }

/// Per-column sums of a (rows, cols) gradient added into an f32 bias gradient.
void gpu_column_sums_add(const Tensor& gy_in, Tensor& gb) {
  Tensor gy = gy_in.contiguous();
  HALO_CHECK_SHAPE(gb.is_contiguous() && gb.numel() == gy.size(1) && gb.dtype() == DType::f32 &&
                       gb.device() == gy.device(),
                   "linear backward: bias gradient ", gb.str(), " does not fit output gradient ", gy.str(),
                   " (f32 on the same GPU expected)");
  const bool bf = cuda::is_bf16(gy, "linear backward");
  cuda::DeviceGuard g(gy.device().index);
  cuda::raw::channel_sums_add(gy.raw_data(), bf, gy.numel(), gy.size(1), 1, static_cast<float*>(gb.raw_data()),
                              cuda::stream_of(gy));
}
#endif

template <bool Reference>
void gemm_impl(bool ta, bool tb, double alpha, const Tensor& a_in, const Tensor& b_in, double beta, Tensor& c) {
  HALO_CHECK_SHAPE(a_in.dim() == 2 && b_in.dim() == 2 && c.dim() == 2, "gemm: operands must be 2-D, got ",
                   a_in.str(), ", ", b_in.str(), ", ", c.str());
#if HALO_ENABLE_CUDA
  if (a_in.device().is_cuda()) {
    Tensor a = a_in.contiguous(), b = b_in.contiguous();
    cuda::gemm(ta, tb, float(alpha), a, b, float(beta), c);
    return;
  }
#endif
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

}  // namespace

void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c) {
  gemm_impl<false>(ta, tb, alpha, a, b, beta, c);
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
#if HALO_ENABLE_CUDA
  if (x.device().is_cuda()) {
    Tensor y = Tensor::empty({x.size(0), w.size(0)}, x.dtype(), x.device());
    gemm(false, true, 1.0, x, as_compute(w, x.dtype()), 0.0, y);
    if (bias.defined()) {
      HALO_CHECK_SHAPE(bias.dim() == 1 && bias.size(0) == w.size(0) && bias.dtype() == DType::f32, "linear: bias ",
                       bias.str(), " does not fit weight ", w.str(), " (f32 expected on the GPU)");
      Tensor b = bias.contiguous();
      cuda::DeviceGuard g(y.device().index);
      cuda::raw::bias_activation(y.raw_data(), cuda::is_bf16(y, "linear"), static_cast<const float*>(b.raw_data()),
                                 y.numel(), y.size(1), 1, Activation::none, 0.f, cuda::stream_of(y));
    }
    return y;
  }
#endif
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
#if HALO_ENABLE_CUDA
  if (gy.device().is_cuda()) return matmul(gy, as_compute(w, gy.dtype()));
#endif
  return matmul(gy, w);
}

void linear_backward_params(const Tensor& x, const Tensor& gy_in, Tensor& gw, Tensor& gb) {
  HALO_CHECK_SHAPE(x.dim() == 2 && gy_in.dim() == 2 && x.size(0) == gy_in.size(0), "linear backward: input ",
                   x.str(), " and output gradient ", gy_in.str(), " differ in batch size");
#if HALO_ENABLE_CUDA
  if (x.device().is_cuda()) {
    // bf16 operands accumulate into the f32 gradient directly (cuBLAS with an f32 C).
    gemm(true, false, 1.0, gy_in, x, 1.0, gw);
    if (gb.defined()) gpu_column_sums_add(gy_in, gb);
    return;
  }
#endif
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

namespace reference {
void gemm(bool ta, bool tb, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c) {
  gemm_impl<true>(ta, tb, alpha, a, b, beta, c);
}
}  // namespace reference

}  // namespace halo::ops
