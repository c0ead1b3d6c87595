// The cuda loss table (kernels in ops.cu and cross_entropy.cu).
#include <limits>

#include "cuda/register.hpp"
#include "dense.hpp"
#include <cuda_runtime.h>

#include "cuda/check.hpp"
#include "cuda/loss.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::ops::cuda_kernels {
namespace {

namespace cuda = halo::cuda;

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

double error_forward(const Tensor& p, const Tensor& t, bool squared, const char* what) {
  gpu_pair(p, t, what);
  return gpu_error_forward(p, t, squared);
}

Tensor error_backward(const Tensor& p, const Tensor& t, bool squared, const char* what) {
  gpu_pair(p, t, what);
  return gpu_error_backward(p, t, squared);
}

/// Logits and labels as the cross-entropy kernel reads them: logits dense channels-last or
/// contiguous (a copy otherwise), labels contiguous, and the kernel's description of them.
struct CeInput {
  Tensor logits, labels;
  cuda::raw::CeDesc desc;
  bool bf16 = false;

  CeInput(const Tensor& logits_in, const Tensor& labels_in, const char* what) {
    HALO_CHECK_SHAPE(labels_in.device() == logits_in.device(), what, ": labels ", labels_in.str(),
                     " must be on the logits' device ", logits_in.device().str());
    const int64_t K = logits_in.size(1);
    bf16 = cuda::is_bf16(logits_in, what);
    const bool cl = logits_in.dim() >= 3 && logits_in.is_channels_last() && !logits_in.is_contiguous() &&
                    logits_in.is_dense();
    logits = cl ? logits_in : logits_in.contiguous();
    labels = labels_in.contiguous();
    desc = {logits.size(0), K, logits.size(0) == 0 ? 0 : logits.numel() / (logits.size(0) * K), cl};
  }
  /// One pass of the kernel (see cuda/loss.hpp) on the logits' current stream.
  void run(const double* weights, int64_t ignore_index, double* sums, int64_t* first_bad, void* grad, float scale,
           const double* normaliser = nullptr) const {
    cuda::raw::cross_entropy(logits.raw_data(), bf16, labels.raw_data(), labels.dtype() == DType::i64, desc, weights,
                             ignore_index, sums, first_bad, grad, scale, cuda::stream_of(logits), normaliser);
  }
};

/// The cross-entropy on the GPU: logits f32 or bf16 (grad in the logits' dtype), labels i32 or
/// i64 on the same device, class weights uploaded as K doubles.
CrossEntropySums gpu_cross_entropy(const Tensor& logits_in, const Tensor& labels_in, const CrossEntropyOptions& o,
                                   Tensor* grad, double scale) {
  const char* what = "cross_entropy";
  const CeInput in(logits_in, labels_in, what);
  const int64_t K = in.desc.classes;
  if (grad) *grad = Tensor::empty_like(in.logits);
  Tensor weights;
  if (!o.class_weights.empty()) weights = Tensor::from_vector(o.class_weights, {K}).to(in.logits.device());
  Tensor sums = Tensor::zeros({2}, DType::f64, in.logits.device());
  const std::vector<int64_t> none{std::numeric_limits<int64_t>::max()};
  Tensor bad = Tensor::from_vector(none, {1}).to(in.logits.device());
  cuda::DeviceGuard guard(in.logits.device().index);
  in.run(weights.defined() ? weights.data<double>() : nullptr, o.ignore_index, sums.data<double>(),
         bad.data<int64_t>(), grad ? grad->raw_data() : nullptr, float(scale));
  const int64_t first_bad = bad.to_vector<int64_t>()[0];
  if (first_bad != std::numeric_limits<int64_t>::max()) {
    const double value = in.labels.to(DType::f64).reshape({-1}).slice(first_bad, first_bad + 1).item();
    throw ShapeError(str(what, ": label ", int64_t(value), " at flat position ", first_bad, " of labels ",
                         labels_in.str(), " is outside [0, ", K, ") and is not the ignore_index ", o.ignore_index));
  }
  const auto s = sums.to_vector<double>();
  return {s[0], s[1]};
}

/// The normalised gradient without the host: pass 1 sums the weights (and finds bad labels),
/// pass 2 writes the gradient scaled by 1 / that sum, read on the device.
Tensor gpu_cross_entropy_gradient(const Tensor& logits_in, const Tensor& labels_in, const Tensor& weights,
                                  int64_t ignore_index, Tensor& first_bad) {
  const char* what = "cross_entropy";
  // A copy of strided integer labels would go through the host: the loaders' are contiguous.
  HALO_CHECK_SHAPE(labels_in.is_contiguous(), what, ": labels ", labels_in.str(),
                   " must be contiguous for the on-device gradient");
  const CeInput in(logits_in, labels_in, what);
  Tensor grad = Tensor::empty_like(in.logits);
  Tensor sums = Tensor::zeros({2}, DType::f64, in.logits.device());
  Tensor again = Tensor::zeros({2}, DType::f64, in.logits.device());  // pass 2 must not add into what it reads
  cuda::DeviceGuard guard(in.logits.device().index);
  const double* w = weights.defined() ? weights.data<double>() : nullptr;
  in.run(w, ignore_index, sums.data<double>(), first_bad.data<int64_t>(), nullptr, 1.f);
  in.run(w, ignore_index, again.data<double>(), first_bad.data<int64_t>(), grad.raw_data(), 1.f, sums.data<double>());
  return grad;
}

}  // namespace
}  // namespace halo::ops::cuda_kernels

namespace halo::kernels::cuda_ops {

void register_loss(ops::OpTable& t) {
  static const ops::LossKernels k = {ops::cuda_kernels::error_forward, ops::cuda_kernels::error_backward,
                                     ops::cuda_kernels::gpu_cross_entropy, ops::cuda_kernels::gpu_cross_entropy_gradient};
  t.loss = &k;
}

}  // namespace halo::kernels::cuda_ops
