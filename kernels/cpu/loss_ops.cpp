// The cpu loss table: f32/f64 reference-quality kernels (loss.cpp).
#include <limits>

#include "cpu/loss.hpp"
#include "dense.hpp"
#include "cpu/register.hpp"

namespace halo::ops::cpu_kernels {
namespace {

void check_pair(const Tensor& p, const Tensor& t, const char* what) {
  HALO_CHECK_SHAPE(p.defined() && t.defined() && p.shape() == t.shape() && p.dtype() == t.dtype(), what,
                   ": prediction ", (p.defined() ? p.str() : "undefined"), " and target ",
                   (t.defined() ? t.str() : "undefined"), " must agree in shape and dtype");
  detail::check_cpu(p, what);
  detail::check_cpu(t, what);
  HALO_CHECK_SHAPE(p.numel() > 0, what, ": empty prediction ", p.str());
}


double error_forward(const Tensor& p_in, const Tensor& t_in, bool squared, const char* what) {
  check_pair(p_in, t_in, what);
  Tensor p = detail::dense(p_in);
  Tensor t = detail::in_layout_of(t_in, p);
  const double s = HALO_DISPATCH_FLOAT(p.dtype(), what, [&] {
    return kernels::cpu::sum_error<T>(p.numel(), p.data<T>(), t.data<T>(), squared);
  });
  return s / double(p.numel());
}

Tensor error_backward(const Tensor& p_in, const Tensor& t_in, bool squared, const char* what) {
  check_pair(p_in, t_in, what);
  Tensor p = detail::dense(p_in);
  Tensor t = detail::in_layout_of(t_in, p);
  Tensor g = Tensor::empty_like(p);
  const double scale = (squared ? 2.0 : 1.0) / double(p.numel());
  HALO_DISPATCH_FLOAT(p.dtype(), what, [&] {
    kernels::cpu::error_grad<T>(p.numel(), p.data<T>(), t.data<T>(), g.data<T>(), scale, squared);
  });
  return g;
}


/// Runs the cross-entropy kernel; grad (when defined) is laid out like the returned logits.
CrossEntropySums run_cross_entropy(const Tensor& logits_in, const Tensor& labels_in, const CrossEntropyOptions& o,
                                   Tensor* grad, double scale) {
  const char* what = "cross_entropy";
  // bf16 logits (mixed precision): the softmax and its gradient in f32, the gradient handed
  // back in bf16 like the logits.
  if (logits_in.dtype() == DType::bf16) {
    Tensor g32;
    const CrossEntropySums sums = run_cross_entropy(logits_in.to(DType::f32), labels_in, o, grad ? &g32 : nullptr, scale);
    if (grad) *grad = g32.to(DType::bf16);
    return sums;
  }
  const int64_t K = logits_in.size(1);
  detail::check_cpu(logits_in, what);
  detail::check_cpu(labels_in, what);
  const bool cl = logits_in.dim() >= 3 && logits_in.is_channels_last() && !logits_in.is_contiguous();
  Tensor logits = cl ? logits_in : logits_in.contiguous();
  Tensor labels = labels_in.contiguous();
  kernels::cpu::CeLayout lay{logits.size(0), K, logits.size(0) == 0 ? 0 : logits.numel() / (logits.size(0) * K), cl};
  if (grad) *grad = Tensor::empty_like(logits);
  const double* w = o.class_weights.empty() ? nullptr : o.class_weights.data();
  CrossEntropySums sums;
  const int64_t bad = HALO_DISPATCH_FLOAT(logits.dtype(), what, [&] {
    T* g = grad ? grad->data<T>() : nullptr;
    if (labels.dtype() == DType::i32)
      return kernels::cpu::cross_entropy<T, int32_t>(lay, logits.data<T>(), labels.data<int32_t>(), w,
                                                     o.ignore_index, &sums.loss, &sums.weight, g, scale);
    return kernels::cpu::cross_entropy<T, int64_t>(lay, logits.data<T>(), labels.data<int64_t>(), w, o.ignore_index,
                                                   &sums.loss, &sums.weight, g, scale);
  });
  if (bad >= 0) {
    const double value = labels.to(DType::f64).reshape({-1}).slice(bad, bad + 1).item();
    throw ShapeError(str(what, ": label ", int64_t(value), " at flat position ", bad, " of labels ", labels_in.str(),
                         " is outside [0, ", K, ") and is not the ignore_index ", o.ignore_index));
  }
  return sums;
}

}  // namespace
}  // namespace halo::ops::cpu_kernels

namespace halo::kernels::cpu {

void register_loss(ops::OpTable& t) {
  static const ops::LossKernels k = {ops::cpu_kernels::error_forward, ops::cpu_kernels::error_backward,
                                     ops::cpu_kernels::run_cross_entropy, nullptr};
  t.loss = &k;
}

}  // namespace halo::kernels::cpu
