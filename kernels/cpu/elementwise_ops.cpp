// The cpu element-wise table: f32/f64 over flat arrays (elementwise.cpp; activations in bf16
// too, for mixed precision), and the
// ops::reference versions over the serial reference kernels (elementwise_ref.cpp).
#include "cpu/bf16_simd.hpp"
#include "cpu/elementwise.hpp"
#include "cpu/register.hpp"
#include "dense.hpp"
#include "op_table.hpp"

namespace halo::kernels::cpu {
namespace {

using ops::Activation;

Tensor activation_forward_op(Activation a, const Tensor& x, double slope) {
  Tensor y = Tensor::empty_like(x);
  if (x.dtype() == DType::bf16) {
    activation_forward_bf16(a, x.data<bf16>(), y.data<bf16>(), x.numel(), float(slope));
    return y;
  }
  HALO_DISPATCH_FLOAT(x.dtype(), ops::name(a),
                      [&] { activation_forward<T>(a, x.data<T>(), y.data<T>(), x.numel(), T(slope)); });
  return y;
}

Tensor activation_backward_op(Activation a, const Tensor& y, const Tensor& gy, double slope) {
  Tensor gx = Tensor::empty_like(y);
  if (y.dtype() == DType::bf16) {
    activation_backward_bf16(a, y.data<bf16>(), gy.data<bf16>(), gx.data<bf16>(), y.numel(), float(slope));
    return gx;
  }
  HALO_DISPATCH_FLOAT(y.dtype(), ops::name(a), [&] {
    activation_backward<T>(a, y.data<T>(), gy.data<T>(), gx.data<T>(), y.numel(), T(slope));
  });
  return gx;
}

/// y = alpha * x + beta * y on bf16 arrays, in f32 (beta == 0 never reads y).
void axpby_bf16(int64_t n, float alpha, const bf16* x, float beta, bf16* y) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    y[i] = bf16(alpha * float(x[i]) + (beta == 0.0f ? 0.0f : beta * float(y[i])));
}

void axpby_op(Tensor& y, double alpha, const Tensor& x, double beta) {
  if (y.dtype() == DType::bf16) return axpby_bf16(y.numel(), float(alpha), x.data<bf16>(), float(beta), y.data<bf16>());
  HALO_DISPATCH_FLOAT(y.dtype(), "axpby", [&] { axpby<T>(y.numel(), T(alpha), x.data<T>(), T(beta), y.data<T>()); });
}

void scale_op(Tensor& x, double alpha) {
  if (x.dtype() == DType::bf16) return axpby_bf16(x.numel(), 0.0f, x.data<bf16>(), float(alpha), x.data<bf16>());
  HALO_DISPATCH_FLOAT(x.dtype(), "scale_", [&] { axpby<T>(x.numel(), T(0), x.data<T>(), T(alpha), x.data<T>()); });
}

Tensor mul_op(const Tensor& a, const Tensor& b) {
  Tensor y = Tensor::empty_like(a);
  if (a.dtype() == DType::bf16) {  // dropout under mixed precision
    map2_bf16(a.numel(), a.data<bf16>(), b.data<bf16>(), y.data<bf16>(), [](auto x, auto m) { return mul(x, m); });
    return y;
  }
  HALO_DISPATCH_FLOAT(a.dtype(), "mul", [&] { mul<T>(a.numel(), a.data<T>(), b.data<T>(), y.data<T>()); });
  return y;
}

double dot_op(const Tensor& a, const Tensor* b) {
  return HALO_DISPATCH_FLOAT(a.dtype(), b ? "dot" : "sum", [&] {
    return b ? dot<T>(a.numel(), a.data<T>(), b->data<T>()) : sum<T>(a.numel(), a.data<T>());
  });
}

Tensor dropout_mask_op(const Tensor& like, double p, uint64_t seed, uint64_t step, const uint64_t*) {
  // A bf16 mask is the f32 one, rounded (0 stays 0; 1/(1-p) is exact for p = 0.5).
  if (like.dtype() == DType::bf16)
    return dropout_mask_op(Tensor::empty(like.shape(), DType::f32, like.device(), like.memory_format()), p, seed,
                           step, nullptr)
        .to(DType::bf16);
  const bool cl = like.dim() >= 3 && like.is_channels_last() && !like.is_contiguous();
  Tensor mask = Tensor::empty(like.shape(), like.dtype(), like.device(),
                              cl ? MemoryFormat::channels_last : MemoryFormat::contiguous);
  const int64_t outer = like.dim() >= 1 ? like.size(0) : 1;
  const int64_t channels = like.dim() >= 2 ? like.size(1) : 1;
  const int64_t inner = outer * channels == 0 ? 0 : like.numel() / (outer * channels);
  HALO_DISPATCH_FLOAT(like.dtype(), "dropout",
                      [&] { dropout_mask<T>(mask.data<T>(), outer, channels, inner, cl, p, seed, step); });
  return mask;
}

const ops::ElementwiseKernels kTable = {activation_forward_op, activation_backward_op, axpby_op, scale_op,
                                        mul_op,                dot_op,                 dropout_mask_op};

}  // namespace

void register_elementwise(ops::OpTable& t) { t.elementwise = &kTable; }

}  // namespace halo::kernels::cpu

namespace halo::ops::reference {

using detail::check_cpu;
using detail::dense;
using detail::in_layout_of;

Tensor activation_forward(Activation a, const Tensor& x_in, double slope) {
  HALO_CHECK_T(ConfigError, a != Activation::leaky_relu || slope >= 0.0, "leaky_relu: slope must be >= 0, got ", slope);
  check_cpu(x_in, name(a));
  const Tensor x = dense(x_in);
  Tensor y = Tensor::empty_like(x);
  HALO_DISPATCH_FLOAT(x.dtype(), name(a), [&] {
    kernels::cpu::ref::activation_forward<T>(a, x.data<T>(), y.data<T>(), x.numel(), T(slope));
  });
  return y;
}

Tensor activation_backward(Activation a, const Tensor& y_in, const Tensor& gy_in, double slope) {
  HALO_CHECK_SHAPE(y_in.defined() && gy_in.defined() && y_in.shape() == gy_in.shape() && y_in.dtype() == gy_in.dtype(),
                   name(a), ": operands differ in shape or dtype");
  check_cpu(y_in, name(a));
  check_cpu(gy_in, name(a));
  const Tensor y = dense(y_in);
  const Tensor gy = in_layout_of(gy_in, y);
  Tensor gx = Tensor::empty_like(y);
  HALO_DISPATCH_FLOAT(y.dtype(), name(a), [&] {
    kernels::cpu::ref::activation_backward<T>(a, y.data<T>(), gy.data<T>(), gx.data<T>(), y.numel(), T(slope));
  });
  return gx;
}

void axpby_(Tensor& y, double alpha, const Tensor& x_in, double beta) {
  HALO_CHECK_SHAPE(y.defined() && x_in.defined() && y.shape() == x_in.shape() && y.dtype() == x_in.dtype(),
                   "axpby: operands differ in shape or dtype");
  check_cpu(y, "axpby");
  check_cpu(x_in, "axpby");
  HALO_CHECK_SHAPE(y.is_dense(), "axpby: destination ", y.str(), " is not dense (in-place ops need a dense tensor)");
  const Tensor x = in_layout_of(x_in, y);
  HALO_DISPATCH_FLOAT(y.dtype(), "axpby",
                      [&] { kernels::cpu::ref::axpby<T>(y.numel(), T(alpha), x.data<T>(), T(beta), y.data<T>()); });
}

}  // namespace halo::ops::reference
