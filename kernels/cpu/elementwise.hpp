// CPU element-wise kernels over flat arrays. The OpenMP versions are in elementwise.cpp,
// the plain serial reference in elementwise_ref.cpp; both are instantiated for float and double.
#pragma once
#include <cstdint>

#include "halo/ops/elementwise.hpp"
#include "halo/tensor/dtype.hpp"

namespace halo::kernels::cpu {

template <class T>
void activation_forward(ops::Activation a, const T* x, T* y, int64_t n, T slope);
template <class T>
void activation_backward(ops::Activation a, const T* y, const T* gy, T* gx, int64_t n, T slope);
/// The same on bf16 arrays (mixed precision), computed in f32 per element.
void activation_forward_bf16(ops::Activation a, const bf16* x, bf16* y, int64_t n, float slope);
void activation_backward_bf16(ops::Activation a, const bf16* y, const bf16* gy, bf16* gx, int64_t n, float slope);
/// y = alpha * x + beta * y; beta == 0 never reads y (so y may be uninitialised).
template <class T>
void axpby(int64_t n, T alpha, const T* x, T beta, T* y);
template <class T>
void mul(int64_t n, const T* a, const T* b, T* y);
template <class T>
double sum(int64_t n, const T* x);
template <class T>
double dot(int64_t n, const T* a, const T* b);
/// Dropout mask for a logical (outer, C, inner) tensor stored contiguously or, when
/// `channels_last`, as (outer, inner, C); keyed by the logical index so both layouts agree.
template <class T>
void dropout_mask(T* mask, int64_t outer, int64_t channels, int64_t inner, bool channels_last, double p,
                  uint64_t seed, uint64_t step);

namespace ref {
template <class T>
void activation_forward(ops::Activation a, const T* x, T* y, int64_t n, T slope);
template <class T>
void activation_backward(ops::Activation a, const T* y, const T* gy, T* gx, int64_t n, T slope);
template <class T>
void axpby(int64_t n, T alpha, const T* x, T beta, T* y);
}  // namespace ref

}  // namespace halo::kernels::cpu
