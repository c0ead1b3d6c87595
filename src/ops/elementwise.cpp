// Dispatch of the element-wise ops: argument checks, layout alignment, device and dtype.
#include "halo/ops/elementwise.hpp"

#include "cpu/elementwise.hpp"
#include "dense.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/elementwise.hpp"
#include "cuda/ops.hpp"
#include "cuda/pool_dropout.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/util/random.hpp"
#endif

namespace halo::ops {

using detail::check_cpu;
using detail::dense;
using detail::in_layout_of;

const char* name(Activation a) {
  switch (a) {
    case Activation::none: return "none";
    case Activation::relu: return "relu";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::tanh: return "tanh";
    case Activation::sigmoid: return "sigmoid";
  }
  return "?";
}

namespace {

void check_same_shape(const Tensor& a, const Tensor& b, const char* what) {
  HALO_CHECK_SHAPE(a.defined() && b.defined(), what, ": undefined operand");
  HALO_CHECK_SHAPE(a.shape() == b.shape() && a.dtype() == b.dtype(), what, ": operands ", a.str(), " and ", b.str(),
                   " differ in shape or dtype");
  check_cpu(a, what);
  check_cpu(b, what);
}

void check_slope(Activation a, double slope) {
  HALO_CHECK_T(ConfigError, a != Activation::leaky_relu || slope >= 0.0,
               "leaky_relu: slope must be >= 0 (backward reads the sign of the output), got ", slope);
}

#if HALO_ENABLE_CUDA
// CUDA branches: f32 or bf16 tensors on one GPU, flat over any dense layout.
bool on_gpu(const Tensor& t) { return t.defined() && t.device().is_cuda(); }

void check_gpu_pair(const Tensor& a, const Tensor& b, const char* what) {
  HALO_CHECK_SHAPE(a.defined() && b.defined() && a.shape() == b.shape() && a.dtype() == b.dtype() &&
                       a.device() == b.device(),
                   what, ": operands ", a.defined() ? a.str() : "undefined", " and ",
                   b.defined() ? b.str() : "undefined", " differ in shape, dtype or device");
}

Tensor gpu_act_forward(Activation a, const Tensor& x_in, double slope) {
  Tensor x = dense(x_in);
  Tensor y = Tensor::empty_like(x);
  cuda::activation_forward(a, x, y, float(slope));
  return y;
}

Tensor gpu_act_backward(Activation a, const Tensor& y_in, const Tensor& gy_in, double slope) {
  check_gpu_pair(y_in, gy_in, name(a));
  Tensor y = dense(y_in);
  Tensor gy = in_layout_of(gy_in, y);
  Tensor gx = Tensor::empty_like(y);
  // The kernels read the input's sign for relu/leaky_relu; the output has the same sign.
  cuda::activation_backward(a, y, y, gy, gx, float(slope));
  return gx;
}

void gpu_axpby(Tensor& y, double alpha, const Tensor& x_in, double beta) {
  check_gpu_pair(y, x_in, "axpby");
  HALO_CHECK_SHAPE(y.is_dense(), "axpby: destination ", y.str(), " is not dense (in-place ops need a dense tensor)");
  Tensor x = in_layout_of(x_in, y);
  const bool bf = cuda::is_bf16(y, "axpby");
  cuda::DeviceGuard g(y.device().index);
  cuda::raw::axpby(float(alpha), x.raw_data(), float(beta), y.raw_data(), y.numel(), bf, cuda::stream_of(y));
}
#endif

template <bool Reference>
Tensor act_forward(Activation a, const Tensor& x_in, double slope) {
  check_slope(a, slope);
#if HALO_ENABLE_CUDA
  if (on_gpu(x_in)) return gpu_act_forward(a, x_in, slope);
#endif
  check_cpu(x_in, name(a));
  Tensor x = dense(x_in);
  Tensor y = Tensor::empty_like(x);
  HALO_DISPATCH_FLOAT(x.dtype(), name(a), [&] {
    if (Reference)
      kernels::cpu::ref::activation_forward<T>(a, x.data<T>(), y.data<T>(), x.numel(), T(slope));
    else
      kernels::cpu::activation_forward<T>(a, x.data<T>(), y.data<T>(), x.numel(), T(slope));
  });
  return y;
}

template <bool Reference>
Tensor act_backward(Activation a, const Tensor& y_in, const Tensor& gy_in, double slope) {
#if HALO_ENABLE_CUDA
  if (on_gpu(y_in)) {
    check_slope(a, slope);
    return gpu_act_backward(a, y_in, gy_in, slope);
  }
#endif
  check_same_shape(y_in, gy_in, name(a));
  check_slope(a, slope);
  Tensor y = dense(y_in);
  Tensor gy = in_layout_of(gy_in, y);
  Tensor gx = Tensor::empty_like(y);
  HALO_DISPATCH_FLOAT(y.dtype(), name(a), [&] {
    if (Reference)
      kernels::cpu::ref::activation_backward<T>(a, y.data<T>(), gy.data<T>(), gx.data<T>(), y.numel(), T(slope));
    else
      kernels::cpu::activation_backward<T>(a, y.data<T>(), gy.data<T>(), gx.data<T>(), y.numel(), T(slope));
  });
  return gx;
}

template <bool Reference>
void axpby_impl(Tensor& y, double alpha, const Tensor& x_in, double beta) {
#if HALO_ENABLE_CUDA
  if (on_gpu(y)) return gpu_axpby(y, alpha, x_in, beta);
#endif
  check_same_shape(y, x_in, "axpby");
  HALO_CHECK_SHAPE(y.is_dense(), "axpby: destination ", y.str(), " is not dense (in-place ops need a dense tensor)");
  Tensor x = in_layout_of(x_in, y);
  HALO_DISPATCH_FLOAT(y.dtype(), "axpby", [&] {
    if (Reference)
      kernels::cpu::ref::axpby<T>(y.numel(), T(alpha), x.data<T>(), T(beta), y.data<T>());
    else
      kernels::cpu::axpby<T>(y.numel(), T(alpha), x.data<T>(), T(beta), y.data<T>());
  });
}

}  // namespace

Tensor activation_forward(Activation a, const Tensor& x, double slope) { return act_forward<false>(a, x, slope); }
Tensor activation_backward(Activation a, const Tensor& y, const Tensor& gy, double slope) {
  return act_backward<false>(a, y, gy, slope);
}

Tensor add(const Tensor& a, const Tensor& b) { return add_n({a, b}); }

Tensor add_n(const std::vector<Tensor>& xs) {
  HALO_CHECK_SHAPE(!xs.empty(), "add_n: no operands");
#if HALO_ENABLE_CUDA
  if (on_gpu(xs[0])) {
    Tensor y = Tensor::empty_like(dense(xs[0]));
    y.copy_(xs[0]);
    for (size_t k = 1; k < xs.size(); ++k) gpu_axpby(y, 1.0, xs[k], 1.0);
    return y;
  }
#endif
  for (size_t k = 1; k < xs.size(); ++k) check_same_shape(xs[0], xs[k], "add");
  check_cpu(xs[0], "add");
  Tensor y = Tensor::empty_like(dense(xs[0]));
  y.copy_(xs[0]);
  for (size_t k = 1; k < xs.size(); ++k) axpy_(y, 1.0, xs[k]);
  return y;
}

Tensor scale(const Tensor& x_in, double alpha) {
#if HALO_ENABLE_CUDA
  if (on_gpu(x_in)) {
    Tensor x = dense(x_in);
    Tensor y = Tensor::empty_like(x);
    gpu_axpby(y, alpha, x, 0.0);
    return y;
  }
#endif
  check_cpu(x_in, "scale");
  Tensor x = dense(x_in);
  Tensor y = Tensor::empty_like(x);
  HALO_DISPATCH_FLOAT(x.dtype(), "scale",
                      [&] { kernels::cpu::axpby<T>(x.numel(), T(alpha), x.data<T>(), T(0), y.data<T>()); });
  return y;
}

void scale_(Tensor& x, double alpha) {
#if HALO_ENABLE_CUDA
  if (on_gpu(x)) {
    HALO_CHECK_SHAPE(x.is_dense(), "scale_: ", x.str(), " is not dense (in-place ops need a dense tensor)");
    cuda::scale(x, float(alpha));
    return;
  }
#endif
  check_cpu(x, "scale_");
  HALO_CHECK_SHAPE(x.is_dense(), "scale_: ", x.str(), " is not dense (in-place ops need a dense tensor)");
  HALO_DISPATCH_FLOAT(x.dtype(), "scale_",
                      [&] { kernels::cpu::axpby<T>(x.numel(), T(0), x.data<T>(), T(alpha), x.data<T>()); });
}

void axpy_(Tensor& y, double alpha, const Tensor& x) { axpby_impl<false>(y, alpha, x, 1.0); }
void axpby_(Tensor& y, double alpha, const Tensor& x, double beta) { axpby_impl<false>(y, alpha, x, beta); }

Tensor mul(const Tensor& a_in, const Tensor& b_in) {
#if HALO_ENABLE_CUDA
  if (on_gpu(a_in)) {
    check_gpu_pair(a_in, b_in, "mul");
    Tensor a = dense(a_in);
    Tensor b = in_layout_of(b_in, a);
    Tensor y = Tensor::empty_like(a);
    const bool bf = cuda::is_bf16(a, "mul");
    cuda::DeviceGuard g(a.device().index);
    cuda::raw::mul(a.raw_data(), b.raw_data(), y.raw_data(), a.numel(), bf, cuda::stream_of(a));
    return y;
  }
#endif
  check_same_shape(a_in, b_in, "mul");
  Tensor a = dense(a_in);
  Tensor b = in_layout_of(b_in, a);
  Tensor y = Tensor::empty_like(a);
  HALO_DISPATCH_FLOAT(a.dtype(), "mul",
                      [&] { kernels::cpu::mul<T>(a.numel(), a.data<T>(), b.data<T>(), y.data<T>()); });
  return y;
}

double sum(const Tensor& x_in) {
#if HALO_ENABLE_CUDA
  if (on_gpu(x_in)) return cuda::reduce_dot(dense(x_in), nullptr);
#endif
  check_cpu(x_in, "sum");
  Tensor x = dense(x_in);
  return HALO_DISPATCH_FLOAT(x.dtype(), "sum", [&] { return kernels::cpu::sum<T>(x.numel(), x.data<T>()); });
}

double sum_squares(const Tensor& x_in) {
#if HALO_ENABLE_CUDA
  if (on_gpu(x_in)) {
    Tensor x = dense(x_in);
    return cuda::reduce_dot(x, &x);
  }
#endif
  check_cpu(x_in, "sum_squares");
  Tensor x = dense(x_in);
  return HALO_DISPATCH_FLOAT(x.dtype(), "sum_squares",
                             [&] { return kernels::cpu::dot<T>(x.numel(), x.data<T>(), x.data<T>()); });
}

double dot(const Tensor& a_in, const Tensor& b_in) {
#if HALO_ENABLE_CUDA
  if (on_gpu(a_in)) {
    check_gpu_pair(a_in, b_in, "dot");
    Tensor a = dense(a_in);
    Tensor b = in_layout_of(b_in, a);
    return cuda::reduce_dot(a, &b);
  }
#endif
  check_same_shape(a_in, b_in, "dot");
  Tensor a = dense(a_in);
  Tensor b = in_layout_of(b_in, a);
  return HALO_DISPATCH_FLOAT(a.dtype(), "dot",
                             [&] { return kernels::cpu::dot<T>(a.numel(), a.data<T>(), b.data<T>()); });
}

Tensor dropout_mask(const Tensor& like, double p, uint64_t seed, uint64_t step) {
#if HALO_ENABLE_CUDA
  if (on_gpu(like)) {
    // Drawn on the device from the CPU's counter-based generator: the same mask, bit for
    // bit, in the same layout as the CPU branch below would give.
    HALO_CHECK_T(ConfigError, p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
    const bool bf = cuda::is_bf16(like, "dropout");
    cuda::raw::DropoutDesc d;
    d.channels_last = like.dim() >= 3 && like.is_channels_last() && !like.is_contiguous();
    d.outer = like.dim() >= 1 ? like.size(0) : 1;
    d.channels = like.dim() >= 2 ? like.size(1) : 1;
    d.inner = d.outer * d.channels == 0 ? 0 : like.numel() / (d.outer * d.channels);
    Tensor mask = Tensor::empty(like.shape(), like.dtype(), like.device(),
                                d.channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous);
    cuda::DeviceGuard g(like.device().index);
    cuda::raw::dropout_mask(mask.raw_data(), bf, d, CounterRng(seed, step).key(), p, float(1.0 / (1.0 - p)),
                            cuda::stream_of(mask));
    return mask;
  }
#endif
  check_cpu(like, "dropout");
  HALO_CHECK_T(ConfigError, p >= 0.0 && p < 1.0, "dropout: probability must be in [0, 1), got ", p);
  const bool cl = like.dim() >= 3 && like.is_channels_last() && !like.is_contiguous();
  Tensor mask = Tensor::empty(like.shape(), like.dtype(), like.device(),
                              cl ? MemoryFormat::channels_last : MemoryFormat::contiguous);
  const int64_t outer = like.dim() >= 1 ? like.size(0) : 1;
  const int64_t channels = like.dim() >= 2 ? like.size(1) : 1;
  const int64_t inner = outer * channels == 0 ? 0 : like.numel() / (outer * channels);
  HALO_DISPATCH_FLOAT(like.dtype(), "dropout", [&] {
    kernels::cpu::dropout_mask<T>(mask.data<T>(), outer, channels, inner, cl, p, seed, step);
  });
  return mask;
}

namespace reference {
Tensor activation_forward(Activation a, const Tensor& x, double slope) { return act_forward<true>(a, x, slope); }
Tensor activation_backward(Activation a, const Tensor& y, const Tensor& gy, double slope) {
  return act_backward<true>(a, y, gy, slope);
}
void axpby_(Tensor& y, double alpha, const Tensor& x, double beta) { axpby_impl<true>(y, alpha, x, beta); }
}  // namespace reference

}  // namespace halo::ops
