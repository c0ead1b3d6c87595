// The cpu metrics table (kernels in metrics.cpp and loss.cpp).
#include <algorithm>

#include "cpu/loss.hpp"
#include "cpu/metrics.hpp"
#include "cpu/register.hpp"
#include "dense.hpp"

namespace halo::ops::cpu_kernels {
namespace {

SumCount mae(const Tensor& p_in, const Tensor& t_in) {
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

IoUCounts iou_counts(const Tensor& logits_in, const Tensor& labels_in, int64_t ignore_index) {
  const char* what = "iou";
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
    out.add_sample(pred.data(), lab.data(), inter.data());
  }
  return out;
}


}  // namespace
}  // namespace halo::ops::cpu_kernels

namespace halo::kernels::cpu {

void register_metrics(ops::OpTable& t) {
  static const ops::MetricsKernels k = {ops::cpu_kernels::mae, ops::cpu_kernels::iou_counts};
  t.metrics = &k;
}

}  // namespace halo::kernels::cpu
