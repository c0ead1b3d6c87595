#include "halo/ops/metrics.hpp"

#include "cpu/loss.hpp"
#include "cpu/metrics.hpp"
#include "dense.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include <limits>

#include "cuda/layer_ops.hpp"
#include "cuda/ops.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::ops {

#if HALO_ENABLE_CUDA
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
  for (int64_t n = 0; n < N; ++n) {
    double sample = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t pred = c[size_t(n * K + k)], lab = c[size_t((N + n) * K + k)], inter = c[size_t((2 * N + n) * K + k)];
      const double i = double(inter), u = double(pred + lab - inter);
      out.intersection[size_t(k)] += i;
      out.union_[size_t(k)] += u;
      sample += u > 0 ? i / u : 1.0;
    }
    out.sample_iou_sum += K > 0 ? sample / double(K) : 0.0;
    out.samples += 1;
  }
  return out;
}
}  // namespace
#endif

SumCount mae(const Tensor& p_in, const Tensor& t_in) {
#if HALO_ENABLE_CUDA
  if (p_in.defined() && p_in.device().is_cuda()) return gpu_mae(p_in, t_in);
#endif
  HALO_CHECK_SHAPE(p_in.defined() && t_in.defined() && p_in.shape() == t_in.shape() && p_in.dtype() == t_in.dtype(),
                   "mae: prediction ", (p_in.defined() ? p_in.str() : "undefined"), " and target ",
                   (t_in.defined() ? t_in.str() : "undefined"), " must agree in shape and dtype");
  detail::check_cpu(p_in, "mae");
  detail::check_cpu(t_in, "mae");
  Tensor p = detail::dense(p_in);
  Tensor t = detail::in_layout_of(t_in, p);
  SumCount r;
  r.sum = HALO_DISPATCH_FLOAT(p.dtype(), "mae", [&] {
    return kernels::cpu::sum_error<T>(p.numel(), p.data<T>(), t.data<T>(), /*squared=*/false);
  });
  r.count = double(p.numel());
  return r;
}

void IoUCounts::merge(const IoUCounts& o) {
  HALO_CHECK_SHAPE(o.classes() == classes() || classes() == 0, "IoUCounts::merge: ", o.classes(), " classes into ",
                   classes());
  if (classes() == 0) {
    intersection.assign(o.intersection.size(), 0.0);
    union_.assign(o.union_.size(), 0.0);
  }
  for (int k = 0; k < classes(); ++k) {
    intersection[size_t(k)] += o.intersection[size_t(k)];
    union_[size_t(k)] += o.union_[size_t(k)];
  }
  sample_iou_sum += o.sample_iou_sum;
  samples += o.samples;
}

std::vector<double> IoUCounts::pack() const {
  std::vector<double> v(intersection);
  v.insert(v.end(), union_.begin(), union_.end());
  v.push_back(sample_iou_sum);
  v.push_back(samples);
  return v;
}

IoUCounts IoUCounts::unpack(const std::vector<double>& v, int classes) {
  HALO_CHECK_SHAPE(int64_t(v.size()) == 2 * int64_t(classes) + 2, "IoUCounts::unpack: ", v.size(),
                   " values for ", classes, " classes (expected ", 2 * classes + 2, ")");
  IoUCounts c;
  c.intersection.assign(v.begin(), v.begin() + classes);
  c.union_.assign(v.begin() + classes, v.begin() + 2 * classes);
  c.sample_iou_sum = v[size_t(2 * classes)];
  c.samples = v[size_t(2 * classes + 1)];
  return c;
}

double IoUCounts::class_iou(int k) const {
  HALO_CHECK_SHAPE(k >= 0 && k < classes(), "IoUCounts::class_iou: class ", k, " of ", classes());
  return union_[size_t(k)] > 0 ? intersection[size_t(k)] / union_[size_t(k)] : 1.0;
}

double IoUCounts::mean_class_iou() const {
  double s = 0;
  int n = 0;
  for (int k = 0; k < classes(); ++k)
    if (union_[size_t(k)] > 0) s += class_iou(k), ++n;
  return n ? s / n : 0.0;
}

IoUCounts iou_counts(const Tensor& logits_in, const Tensor& labels_in, int64_t ignore_index) {
  const char* what = "iou";
  HALO_CHECK_SHAPE(logits_in.defined() && labels_in.defined() && logits_in.dim() >= 2, what,
                   ": logits must be (N, K, spatial...), got ", (logits_in.defined() ? logits_in.str() : "undefined"));
  Shape want = logits_in.shape();
  want.erase(want.begin() + 1);
  HALO_CHECK_SHAPE(labels_in.shape() == want, what, ": labels ", labels_in.str(), " do not fit logits ",
                   logits_in.str(), " (expected labels of shape ", to_string(want), ")");
  HALO_CHECK_SHAPE(labels_in.dtype() == DType::i32 || labels_in.dtype() == DType::i64, what, ": labels ",
                   labels_in.str(), " must be i32 or i64");
#if HALO_ENABLE_CUDA
  if (logits_in.device().is_cuda()) return gpu_iou_counts(logits_in, labels_in, ignore_index);
#endif
  detail::check_cpu(logits_in, what);
  detail::check_cpu(labels_in, what);
  const bool cl = logits_in.dim() >= 3 && logits_in.is_channels_last() && !logits_in.is_contiguous();
  Tensor logits = cl ? logits_in : logits_in.contiguous();
  Tensor labels = labels_in.contiguous();
  const int64_t N = logits.size(0), K = logits.size(1), S = N * K == 0 ? 0 : logits.numel() / (N * K);

  IoUCounts out;
  out.intersection.assign(size_t(K), 0.0);
  out.union_.assign(size_t(K), 0.0);
  std::vector<int64_t> pred(static_cast<size_t>(K)), lab(static_cast<size_t>(K)), inter(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    std::fill(pred.begin(), pred.end(), 0);
    std::fill(lab.begin(), lab.end(), 0);
    std::fill(inter.begin(), inter.end(), 0);
    const int64_t bad = HALO_DISPATCH_FLOAT(logits.dtype(), what, [&] {
      const T* x = logits.data<T>() + n * K * S;
      if (labels.dtype() == DType::i32)
        return kernels::cpu::confusion_counts<T, int32_t>(x, labels.data<int32_t>() + n * S, K, S, cl, ignore_index,
                                                          pred.data(), lab.data(), inter.data());
      return kernels::cpu::confusion_counts<T, int64_t>(x, labels.data<int64_t>() + n * S, K, S, cl, ignore_index,
                                                        pred.data(), lab.data(), inter.data());
    });
    if (bad >= 0) {
      const double value = labels.to(DType::f64).reshape({-1}).slice(n * S + bad, n * S + bad + 1).item();
      throw ShapeError(str(what, ": label ", int64_t(value), " at sample ", n, " pixel ", bad, " of labels ",
                           labels_in.str(), " is outside [0, ", K, ") and is not the ignore_index ", ignore_index));
    }
    double sample = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double i = double(inter[size_t(k)]), u = double(pred[size_t(k)] + lab[size_t(k)] - inter[size_t(k)]);
      out.intersection[size_t(k)] += i;
      out.union_[size_t(k)] += u;
      sample += u > 0 ? i / u : 1.0;
    }
    out.sample_iou_sum += K > 0 ? sample / double(K) : 0.0;
    out.samples += 1;
  }
  return out;
}

}  // namespace halo::ops
