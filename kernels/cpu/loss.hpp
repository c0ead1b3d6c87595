// CPU loss kernels. Logits of a pixel sit at base(p) + k * class_stride, where the layout
// gives (contiguous) base = n*K*S + s, stride S, or (channels-last) base = p*K, stride 1.
#pragma once
#include <cstdint>

namespace halo::kernels::cpu {

/// sum (p - t)^2 (squared) or sum |p - t|.
template <class T>
double sum_error(int64_t n, const T* p, const T* t, bool squared);
/// g = scale * (p - t) (squared) or scale * sign(p - t).
template <class T>
void error_grad(int64_t n, const T* p, const T* t, T* g, double scale, bool squared);

struct CeLayout {
  int64_t batch, classes, spatial;
  bool channels_last;
};

/// Returns -1 on success, else the flat index of the first pixel whose label is invalid.
/// When `grad` is non-null it receives scale * w_y (softmax - onehot) (forward sums still computed).
template <class T, class L>
int64_t cross_entropy(const CeLayout& lay, const T* logits, const L* labels, const double* weights,
                      int64_t ignore_index, double* loss_sum, double* weight_sum, T* grad, double scale);

}  // namespace halo::kernels::cpu
