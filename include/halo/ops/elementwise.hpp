// Element-wise operators: activations (forward and backward), and the add / scale / axpy
// helpers used by layers and optimizers.
//
// Every dense tensor is treated as a flat array and results keep the input's memory
// format, so channels-last activations stay channels-last. When two operands are dense
// with different layouts, the second is first copied into the first one's layout.
// Activation backward is computed from the stored output y (not the input): for ReLU and
// LeakyReLU(slope >= 0) sign(y) == sign(x), for tanh dy/dx = 1 - y^2 and for sigmoid
// y (1 - y), so layers keep one tensor and backward is one fused pass.
#pragma once
#include <cstdint>
#include <vector>

#include "halo/ops/activation.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::ops {


/// y = act(x). `slope` is the negative-side slope of leaky_relu (ignored otherwise).
Tensor activation_forward(Activation a, const Tensor& x, double slope = 0.0);
/// dL/dx from the forward output y and dL/dy. For leaky_relu, slope must be >= 0.
Tensor activation_backward(Activation a, const Tensor& y, const Tensor& grad_y, double slope = 0.0);

/// a + b (same shape); the result has a's layout.
Tensor add(const Tensor& a, const Tensor& b);
/// Sum of n tensors of the same shape; the result has the first one's layout.
Tensor add_n(const std::vector<Tensor>& xs);
/// alpha * x, same layout as x.
Tensor scale(const Tensor& x, double alpha);
/// x *= alpha, in place.
void scale_(Tensor& x, double alpha);
/// y += alpha * x, in place (BLAS axpy semantics).
void axpy_(Tensor& y, double alpha, const Tensor& x);
/// y = alpha * x + beta * y, in place (momentum buffers, decayed averages).
void axpby_(Tensor& y, double alpha, const Tensor& x, double beta);
/// a * b element-wise (same shape); the result has a's layout.
Tensor mul(const Tensor& a, const Tensor& b);

/// Sum of all elements, accumulated in double.
double sum(const Tensor& x);
/// Sum of squares of all elements, accumulated in double (global-norm clipping).
double sum_squares(const Tensor& x);
/// Sum of a * b over all elements, accumulated in double.
double dot(const Tensor& a, const Tensor& b);

/// Inverted-dropout mask shaped and laid out like `like` (contiguous or channels-last):
/// element i (logical row-major index) is 1/(1-p) when CounterRng(seed, step).uniform(i) >= p,
/// else 0. Independent of thread count and memory format.
/// `key_on_device` (GPU only): the device address of CounterRng(seed, step).key(), read when
/// the kernel runs instead of the key of (seed, step): a CUDA graph's replay value
/// (cuda::replay_value), so each replay draws its own step's mask.
Tensor dropout_mask(const Tensor& like, double p, uint64_t seed, uint64_t step,
                    const uint64_t* key_on_device = nullptr);

/// Plain serial kernels with the same contract, for tests and for debugging the fast ones.
namespace reference {
Tensor activation_forward(Activation a, const Tensor& x, double slope = 0.0);
Tensor activation_backward(Activation a, const Tensor& y, const Tensor& grad_y, double slope = 0.0);
void axpby_(Tensor& y, double alpha, const Tensor& x, double beta);
}  // namespace reference

}  // namespace halo::ops
