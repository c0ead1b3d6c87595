// Metrics: argument checks and the count algebra, then the kernels of the operands' device.
#include "halo/ops/metrics.hpp"

#include "op_table.hpp"

namespace halo::ops {

SumCount mae(const Tensor& p, const Tensor& t) { return metrics_kernels(device_of(p), "mae").mae(p, t); }

void IoUCounts::add_sample(const int64_t* predicted, const int64_t* labelled, const int64_t* both) {
  const size_t K = intersection.size();
  double sample = 0;
  for (size_t k = 0; k < K; ++k) {
    const double i = double(both[k]), u = double(predicted[k] + labelled[k] - both[k]);
    intersection[k] += i;
    union_[k] += u;
    sample += u > 0 ? i / u : 1.0;
  }
  sample_iou_sum += K > 0 ? sample / double(K) : 0.0;
  samples += 1;
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
  return metrics_kernels(logits_in.device(), what).iou_counts(logits_in, labels_in, ignore_index);
}

}  // namespace halo::ops
