// The cuda matmul table: cuBLAS (gemm_cublas.cpp) and the bias kernels of ops.cu.
#include "cuda/gemm.hpp"
#include "cuda/conv_epilogue.hpp"
#include "cuda/register.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::ops::cuda_kernels {
namespace {

namespace cuda = halo::cuda;

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

void gemm(bool ta, bool tb, double alpha, const Tensor& a_in, const Tensor& b_in, double beta, Tensor& c) {
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  cuda::gemm(ta, tb, float(alpha), a, b, float(beta), c);
}

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
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

Tensor linear_backward_data(const Tensor& gy, const Tensor& w) { return ops::matmul(gy, as_compute(w, gy.dtype())); }

void linear_backward_params(const Tensor& x, const Tensor& gy, Tensor& gw, Tensor& gb) {
  // bf16 operands accumulate into the f32 gradient directly (cuBLAS with an f32 C).
  gemm(true, false, 1.0, gy, x, 1.0, gw);
  if (gb.defined()) gpu_column_sums_add(gy, gb);
}

}  // namespace
}  // namespace halo::ops::cuda_kernels

namespace halo::kernels::cuda_ops {

void register_matmul(ops::OpTable& t) {
  static const ops::MatmulKernels k = {ops::cuda_kernels::gemm, ops::cuda_kernels::linear_forward,
                                       ops::cuda_kernels::linear_backward_data, ops::cuda_kernels::linear_backward_params};
  t.matmul = &k;
}

}  // namespace halo::kernels::cuda_ops
