#include "halo/ops/loss.hpp"

#include <limits>

#include "cpu/loss.hpp"
#include "dense.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/layer_ops.hpp"
#include "cuda/ops.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::ops {

namespace {

void check_pair(const Tensor& p, const Tensor& t, const char* what) {
  HALO_CHECK_SHAPE(p.defined() && t.defined() && p.shape() == t.shape() && p.dtype() == t.dtype(), what,
                   ": prediction ", (p.defined() ? p.str() : "undefined"), " and target ",
                   (t.defined() ? t.str() : "undefined"), " must agree in shape and dtype");
  detail::check_cpu(p, what);
  detail::check_cpu(t, what);
  HALO_CHECK_SHAPE(p.numel() > 0, what, ": empty prediction ", p.str());
}

#if HALO_ENABLE_CUDA
// On the GPU the prediction may be bf16 (mixed precision) while the target stays f32: the
// kernels read both in f32 and sum in f64.
bool gpu_pair(const Tensor& p, const Tensor& t, const char* what) {
  if (!p.defined() || !p.device().is_cuda()) return false;
  HALO_CHECK_SHAPE(t.defined() && p.shape() == t.shape() && p.device() == t.device(), what, ": prediction ", p.str(),
                   " and target ", t.defined() ? t.str() : "undefined", " must agree in shape and device");
  HALO_CHECK_SHAPE(p.numel() > 0, what, ": empty prediction ", p.str());
  return true;
}

double gpu_error_forward(const Tensor& p_in, const Tensor& t_in, bool squared) {
  Tensor p = detail::dense(p_in);
  Tensor t = detail::in_layout_of(t_in, p);
  const bool pb = cuda::is_bf16(p, "loss"), tb = cuda::is_bf16(t, "loss");
  cuda::DeviceGuard g(p.device().index);
  Tensor acc = Tensor::zeros({1}, DType::f64, p.device());
  cuda::raw::diff_loss(squared ? cuda::raw::DiffLoss::mse : cuda::raw::DiffLoss::l1, p.raw_data(), pb, t.raw_data(),
                       tb, p.numel(), static_cast<double*>(acc.raw_data()), cuda::stream_of(p));
  return acc.item() / double(p.numel());
}

Tensor gpu_error_backward(const Tensor& p_in, const Tensor& t_in, bool squared) {
  Tensor p = detail::dense(p_in);
  Tensor t = detail::in_layout_of(t_in, p);
  Tensor g = Tensor::empty_like(p);
  const bool pb = cuda::is_bf16(p, "loss"), tb = cuda::is_bf16(t, "loss");
  cuda::DeviceGuard guard(p.device().index);
  cuda::raw::diff_loss_grad(squared ? cuda::raw::DiffLoss::mse : cuda::raw::DiffLoss::l1, p.raw_data(), pb,
                            t.raw_data(), tb, g.raw_data(), p.numel(), float(1.0 / double(p.numel())),
                            cuda::stream_of(p));
  return g;
}
#endif

double error_forward(const Tensor& p_in, const Tensor& t_in, bool squared, const char* what) {
#if HALO_ENABLE_CUDA
  if (gpu_pair(p_in, t_in, what)) return gpu_error_forward(p_in, t_in, squared);
#endif
  check_pair(p_in, t_in, what);
  Tensor p = detail::dense(p_in);
  Tensor t = detail::in_layout_of(t_in, p);
  const double s = HALO_DISPATCH_FLOAT(p.dtype(), what, [&] {
    return kernels::cpu::sum_error<T>(p.numel(), p.data<T>(), t.data<T>(), squared);
  });
  return s / double(p.numel());
}

Tensor error_backward(const Tensor& p_in, const Tensor& t_in, bool squared, const char* what) {
#if HALO_ENABLE_CUDA
  if (gpu_pair(p_in, t_in, what)) return gpu_error_backward(p_in, t_in, squared);
#endif
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

#if HALO_ENABLE_CUDA
/// The cross-entropy on the GPU: logits f32 or bf16 (grad in the logits' dtype), labels i32 or
/// i64 on the same device, class weights uploaded as K doubles.
CrossEntropySums gpu_cross_entropy(const Tensor& logits_in, const Tensor& labels_in, const CrossEntropyOptions& o,
                                   Tensor* grad, double scale) {
  const char* what = "cross_entropy";
  HALO_CHECK_SHAPE(labels_in.device() == logits_in.device(), what, ": labels ", labels_in.str(),
                   " must be on the logits' device ", logits_in.device().str());
  const int64_t K = logits_in.size(1);
  const bool bf16 = cuda::is_bf16(logits_in, what);
  const bool cl = logits_in.dim() >= 3 && logits_in.is_channels_last() && !logits_in.is_contiguous() &&
                  logits_in.is_dense();
  Tensor logits = cl ? logits_in : logits_in.contiguous();
  Tensor labels = labels_in.contiguous();
  cuda::raw::CeDesc d{logits.size(0), K, logits.size(0) == 0 ? 0 : logits.numel() / (logits.size(0) * K), cl};
  if (grad) *grad = Tensor::empty_like(logits);
  Tensor weights;
  if (!o.class_weights.empty()) weights = Tensor::from_vector(o.class_weights, {K}).to(logits.device());
  Tensor sums = Tensor::zeros({2}, DType::f64, logits.device());
  const std::vector<int64_t> none{std::numeric_limits<int64_t>::max()};
  Tensor bad = Tensor::from_vector(none, {1}).to(logits.device());
  cuda::DeviceGuard guard(logits.device().index);
  cuda::raw::cross_entropy(logits.raw_data(), bf16, labels.raw_data(), labels.dtype() == DType::i64, d,
                           weights.defined() ? weights.data<double>() : nullptr, o.ignore_index, sums.data<double>(),
                           bad.data<int64_t>(), grad ? grad->raw_data() : nullptr, float(scale),
                           cuda::stream_of(logits));
  const int64_t first_bad = bad.to_vector<int64_t>()[0];
  if (first_bad != std::numeric_limits<int64_t>::max()) {
    const double value = labels.to(DType::f64).reshape({-1}).slice(first_bad, first_bad + 1).item();
    throw ShapeError(str(what, ": label ", int64_t(value), " at flat position ", first_bad, " of labels ",
                         labels_in.str(), " is outside [0, ", K, ") and is not the ignore_index ", o.ignore_index));
  }
  const auto s = sums.to_vector<double>();
  return {s[0], s[1]};
}
#endif

/// Runs the cross-entropy kernel; grad (when defined) is laid out like the returned logits.
CrossEntropySums run_cross_entropy(const Tensor& logits_in, const Tensor& labels_in, const CrossEntropyOptions& o,
                                   Tensor* grad, double scale) {
  const char* what = "cross_entropy";
  HALO_CHECK_SHAPE(logits_in.defined() && labels_in.defined() && logits_in.dim() >= 2, what, ": logits must be (N, K",
                   ", spatial...), got ", (logits_in.defined() ? logits_in.str() : "undefined"));
  Shape want = logits_in.shape();
  want.erase(want.begin() + 1);
  HALO_CHECK_SHAPE(labels_in.shape() == want, what, ": labels ", labels_in.str(), " do not fit logits ",
                   logits_in.str(), " (expected labels of shape ", to_string(want), ")");
  HALO_CHECK_SHAPE(labels_in.dtype() == DType::i32 || labels_in.dtype() == DType::i64, what, ": labels ",
                   labels_in.str(), " must be i32 or i64");
  const int64_t K = logits_in.size(1);
  HALO_CHECK_SHAPE(o.class_weights.empty() || int64_t(o.class_weights.size()) == K, what, ": ",
                   o.class_weights.size(), " class weights for ", K, " classes");
#if HALO_ENABLE_CUDA
  if (logits_in.device().is_cuda()) return gpu_cross_entropy(logits_in, labels_in, o, grad, scale);
#endif
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

double mse_forward(const Tensor& p, const Tensor& t) { return error_forward(p, t, true, "mse"); }
Tensor mse_backward(const Tensor& p, const Tensor& t) { return error_backward(p, t, true, "mse"); }
double l1_forward(const Tensor& p, const Tensor& t) { return error_forward(p, t, false, "l1"); }
Tensor l1_backward(const Tensor& p, const Tensor& t) { return error_backward(p, t, false, "l1"); }

CrossEntropySums cross_entropy_forward(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o) {
  return run_cross_entropy(logits, labels, o, nullptr, 0.0);
}

Tensor cross_entropy_backward(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o,
                              double scale) {
  Tensor g;
  run_cross_entropy(logits, labels, o, &g, scale);
  return g;
}

}  // namespace halo::ops
