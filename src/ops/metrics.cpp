#include "halo/ops/metrics.hpp"

#include "cpu/loss.hpp"
#include "cpu/metrics.hpp"
#include "dense.hpp"

namespace halo::ops {

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
  detail::check_cpu(logits_in, what);
  detail::check_cpu(labels_in, what);
  Shape want = logits_in.shape();
  want.erase(want.begin() + 1);
  HALO_CHECK_SHAPE(labels_in.shape() == want, what, ": labels ", labels_in.str(), " do not fit logits ",
                   logits_in.str(), " (expected labels of shape ", to_string(want), ")");
  HALO_CHECK_SHAPE(labels_in.dtype() == DType::i32 || labels_in.dtype() == DType::i64, what, ": labels ",
                   labels_in.str(), " must be i32 or i64");
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
