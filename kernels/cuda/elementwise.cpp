// Tensor-level element-wise entry points: argument checks here (host compiler), the
// launches in elementwise.cu.
#include "cuda/elementwise.hpp"

#include "halo/cuda/runtime.hpp"

namespace halo::cuda {

namespace {

bool check_flat(const Tensor& t, const char* who, const char* name) {
  HALO_CHECK_SHAPE(t.defined() && t.device().is_cuda(), who, ": ", name, " must be a cuda tensor, got ",
                   t.defined() ? t.str() : std::string("undefined"));
  HALO_CHECK_SHAPE(t.dtype() == DType::f32 || t.dtype() == DType::bf16, who, ": ", name, " ", t.str(),
                   " has dtype ", halo::name(t.dtype()), " (f32 or bf16 expected)");
  HALO_CHECK_SHAPE(t.is_dense(), who, ": ", name, " ", t.str(), " must be dense");
  return t.dtype() == DType::bf16;
}

void check_like(const Tensor& a, const Tensor& b, const char* who) {
  HALO_CHECK_SHAPE(a.shape() == b.shape() && a.dtype() == b.dtype() && a.strides() == b.strides() &&
                       a.device() == b.device(),
                   who, ": ", a.str(), " and ", b.str(), " must agree in shape, dtype, layout and device");
}

void* stream_of(const Tensor& t) { return current_stream(t.device().index); }

}  // namespace

void activation_forward(Activation f, const Tensor& x, Tensor& y, float alpha) {
  bool bf = check_flat(x, "cuda activation_forward", "x");
  check_like(x, y, "cuda activation_forward");
  DeviceGuard g(x.device().index);
  raw::activation_forward(f, x.raw_data(), y.raw_data(), x.numel(), bf, alpha, stream_of(x));
}

void activation_backward(Activation f, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx, float alpha) {
  const bool uses_input = f == Activation::relu || f == Activation::leaky_relu;
  const Tensor& v = uses_input ? x : y;
  const char* vname = uses_input ? "x (forward input)" : "y (forward output)";
  bool bf = check_flat(v, "cuda activation_backward", vname);
  check_like(v, dy, "cuda activation_backward");
  check_like(v, dx, "cuda activation_backward");
  DeviceGuard g(dy.device().index);
  raw::activation_backward(f, v.raw_data(), dy.raw_data(), dx.raw_data(), dy.numel(), bf, alpha, stream_of(dy));
}

void scale(Tensor& x, float alpha) {
  bool bf = check_flat(x, "cuda scale", "x");
  DeviceGuard g(x.device().index);
  raw::scale(x.raw_data(), x.numel(), bf, alpha, stream_of(x));
}

void axpy(float alpha, const Tensor& x, Tensor& y) {
  bool bf = check_flat(x, "cuda axpy", "x");
  check_like(x, y, "cuda axpy");
  DeviceGuard g(x.device().index);
  raw::axpy(alpha, x.raw_data(), y.raw_data(), x.numel(), bf, stream_of(x));
}

void fill(Tensor& x, float value) {
  bool bf = check_flat(x, "cuda fill", "x");
  DeviceGuard g(x.device().index);
  raw::fill(x.raw_data(), x.numel(), bf, value, stream_of(x));
}

}  // namespace halo::cuda
