// The cuda metrics table (kernels in metrics.cu and ops.cu).
#include "cuda/register.hpp"
#include "dense.hpp"
#include <limits>

#include "cuda/metrics.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::ops::cuda_kernels {

namespace cuda = halo::cuda;

namespace {
// MAE on the GPU: prediction and target f32 or bf16 (each its own), summed in f64.
SumCount gpu_mae(const Tensor& p_in, const Tensor& t_in) {
  HALO_CHECK_SHAPE(t_in.defined() && p_in.shape() == t_in.shape() && p_in.device() == t_in.device(),
                   "mae: prediction ", p_in.str(), " and target ", t_in.defined() ? t_in.str() : "undefined",
                   " must agree in shape and device");
  Tensor p = detail::dense(p_in);
  Tensor t = detail::in_layout_of(t_in, p);
  const bool pb = cuda::is_bf16(p, "mae"), tb = cuda::is_bf16(t, "mae");
  cuda::DeviceGuard guard(p.device().index);
  Tensor acc = Tensor::zeros({1}, DType::f64, p.device());
  cuda::raw::diff_loss(cuda::raw::DiffLoss::l1, p.raw_data(), pb, t.raw_data(), tb, p.numel(),
                       acc.data<double>(), cuda::stream_of(p));
  SumCount r;
  r.sum = acc.item();
  r.count = double(p.numel());
  return r;
}

// Per-sample counts on the device (3 N K integers), the per-sample IoU algebra on the host.
IoUCounts gpu_iou_counts(const Tensor& logits_in, const Tensor& labels_in, int64_t ignore_index) {
  const char* what = "iou";
  HALO_CHECK_SHAPE(labels_in.device() == logits_in.device(), what, ": labels ", labels_in.str(),
                   " must be on the logits' device ", logits_in.device().str());
  const bool bf16 = cuda::is_bf16(logits_in, what);
  const bool cl = logits_in.dim() >= 3 && logits_in.is_channels_last() && !logits_in.is_contiguous() &&
                  logits_in.is_dense();
  Tensor logits = cl ? logits_in : logits_in.contiguous();
  Tensor labels = labels_in.contiguous();
  const int64_t N = logits.size(0), K = logits.size(1), S = N * K == 0 ? 0 : logits.numel() / (N * K);
  Tensor counts = Tensor::zeros({3 * N * K}, DType::i64, logits.device());
  const std::vector<int64_t> none{std::numeric_limits<int64_t>::max()};
  Tensor bad = Tensor::from_vector(none, {1}).to(logits.device());
  {
    cuda::DeviceGuard guard(logits.device().index);
    cuda::raw::confusion_counts(logits.raw_data(), bf16, labels.raw_data(), labels.dtype() == DType::i64,
                                cuda::raw::CeDesc{N, K, S, cl}, ignore_index, counts.data<int64_t>(),
                                bad.data<int64_t>(), cuda::stream_of(logits));
  }
  const int64_t first_bad = bad.to_vector<int64_t>()[0];
  if (first_bad != std::numeric_limits<int64_t>::max()) {
    const double value = labels.to(DType::f64).reshape({-1}).slice(first_bad, first_bad + 1).item();
    throw ShapeError(str(what, ": label ", int64_t(value), " at sample ", first_bad / S, " pixel ", first_bad % S,
                         " of labels ", labels_in.str(), " is outside [0, ", K, ") and is not the ignore_index ",
                         ignore_index));
  }
  const std::vector<int64_t> c = counts.to_vector<int64_t>();
  IoUCounts out;
  out.intersection.assign(size_t(K), 0.0);
  out.union_.assign(size_t(K), 0.0);
  // counts holds, per sample, K predicted, then (from N * K) K labelled, then K in both.
  for (int64_t n = 0; n < N; ++n)
    out.add_sample(c.data() + n * K, c.data() + (N + n) * K, c.data() + (2 * N + n) * K);
  return out;
}
}  // namespace

}  // namespace halo::ops::cuda_kernels

namespace halo::kernels::cuda_ops {

void register_metrics(ops::OpTable& t) {
  static const ops::MetricsKernels k = {ops::cuda_kernels::gpu_mae, ops::cuda_kernels::gpu_iou_counts};
  t.metrics = &k;
}

}  // namespace halo::kernels::cuda_ops
