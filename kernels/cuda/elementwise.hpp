// Element-wise CUDA kernels: activations forward and backward, scale, axpy, fill, mul, axpby, the
// dot-product reduction and dropout masks. They treat any dense tensor as a flat array (so they
// keep its memory format) and take f32 or bf16, computing in f32. Work is queued on the thread's
// current stream for the tensor's device.
#pragma once
#include "halo/ops/activation.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::cuda {

/// The activations shared with the ops and the fused conv epilogues; `none` is the identity.
using halo::ops::Activation;

/// y = f(x); `alpha` is the negative slope of leaky_relu. y may be x (in place).
void activation_forward(Activation f, const Tensor& x, Tensor& y, float alpha = 0.f);
/// dx = dy * f'(.). relu and leaky_relu read the forward input x; tanh and sigmoid read the
/// forward output y (both cheaper and exact). Pass the one the function needs, the other
/// may be undefined. dx may be dy (in place).
void activation_backward(Activation f, const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx,
                         float alpha = 0.f);
/// x *= alpha.
void scale(Tensor& x, float alpha);
/// y += alpha * x.
void axpy(float alpha, const Tensor& x, Tensor& y);
/// Every element of x = value.
void fill(Tensor& x, float value);

namespace raw {
// The launchers behind the Tensor functions (kernels/cuda/elementwise.cu), for callers that
// hold plain device pointers. `bf16` selects bfloat16 storage, else float.
void activation_forward(Activation f, const void* x, void* y, int64_t n, bool bf16, float alpha, void* stream);
void activation_backward(Activation f, const void* xy, const void* dy, void* dx, int64_t n, bool bf16, float alpha,
                         void* stream);
void scale(void* x, int64_t n, bool bf16, float alpha, void* stream);
void axpy(float alpha, const void* x, void* y, int64_t n, bool bf16, void* stream);
void fill(void* x, int64_t n, bool bf16, float value, void* stream);

/// y = a * b element-wise.
void mul(const void* a, const void* b, void* y, int64_t n, bool bf16, void* stream);
/// y = alpha * x + beta * y.
void axpby(float alpha, const void* x, float beta, void* y, int64_t n, bool bf16, void* stream);
/// *out (device double, added to) += sum a[i] * b[i], or sum a[i] when b is null.
void dot(const void* a, const void* b, int64_t n, bool bf16, double* out, void* stream);


/// Inverted-dropout mask over a dense (outer, channels, inner) tensor: element of logical
/// (contiguous) index i gets `keep` when uniform(i) >= p, else 0, with uniform(i) the value of
/// halo::CounterRng whose key() is `key` (the CPU's draw, bit for bit). channels_last: the
/// mask is stored as (outer, inner, channels).
struct DropoutDesc {
  int64_t outer = 0, channels = 1, inner = 1;
  bool channels_last = false;
};
/// key_on_device, when not null, holds the key instead (read when the kernel runs).
void dropout_mask(void* mask, bool bf16, const DropoutDesc& d, uint64_t key, const uint64_t* key_on_device, double p,
                  float keep, void* stream);
}  // namespace raw

}  // namespace halo::cuda
