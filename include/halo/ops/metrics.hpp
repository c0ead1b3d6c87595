// Evaluation metrics as raw sums and counts. A distributed reduction adds the sums and the
// counts of every rank and only then divides, so the result is exact however unevenly the
// samples are sharded; `merge` and `pack`/`unpack` serve that reduction.
#pragma once
#include <cstdint>
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::ops {

struct SumCount {
  double sum = 0;
  double count = 0;
  /// sum / count, 0 when nothing was counted.
  double mean() const { return count > 0 ? sum / count : 0.0; }
  void merge(const SumCount& o) {
    sum += o.sum;
    count += o.count;
  }
};

/// Mean absolute error as (sum |p - t|, number of elements); same shape, any layout, f32/f64.
SumCount mae(const Tensor& prediction, const Tensor& target);

/// Segmentation overlap counts. Pixels labelled ignore_index count nowhere.
struct IoUCounts {
  std::vector<double> intersection;  ///< per class: pixels predicted k and labelled k
  std::vector<double> union_;        ///< per class: pixels predicted k or labelled k
  /// Sum over samples of the sample's mean IoU over classes, where a class absent from both
  /// prediction and label scores 1 (the DeepCAM reference's per-sample convention).
  double sample_iou_sum = 0;
  double samples = 0;

  int classes() const { return int(intersection.size()); }
  /// Adds one sample from its per-class pixel counts (K each): predicted k, labelled k, both.
  /// Every backend's kernels count pixels and leave this accumulation to it.
  void add_sample(const int64_t* predicted, const int64_t* labelled, const int64_t* both);
  void merge(const IoUCounts& o);
  /// intersection..., union..., sample_iou_sum, samples: 2K + 2 doubles for one allreduce.
  std::vector<double> pack() const;
  static IoUCounts unpack(const std::vector<double>& packed, int classes);

  /// intersection / union of class k over everything counted; 1 when the class never
  /// appeared in prediction or label.
  double class_iou(int k) const;
  /// Mean of class_iou over classes that appeared (union > 0); 0 when none did.
  double mean_class_iou() const;
  /// sample_iou_sum / samples: DeepCAM's reported IoU.
  double mean_sample_iou() const { return samples > 0 ? sample_iou_sum / samples : 0.0; }
};

/// Logits (N, K, spatial...) in contiguous or channels-last layout (or (N, K)); labels
/// (N, spatial...) i32 or i64. The prediction is the arg-max class (the first on ties).
IoUCounts iou_counts(const Tensor& logits, const Tensor& labels, int64_t ignore_index = -100);

}  // namespace halo::ops
