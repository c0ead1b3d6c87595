// Losses: MSELoss and L1Loss (mean over all elements), and WeightedCrossEntropy for
// per-pixel segmentation.
//
// WeightedCrossEntropy normalises by the summed weight of the counted pixels:
//   loss = sum_p w[y_p] * -log softmax(x_p)[y_p] / sum_p w[y_p]   (ignored pixels excluded)
// This is PyTorch's CrossEntropyLoss(weight, reduction="mean"), which DeepCAM's reference
// trains with: with heavily weighted rare classes (cyclones, rivers) the loss stays on the
// scale of an unweighted mean instead of growing with the weights, so learning rates carry
// over. Dividing by the weight sum of the local batch makes a data-parallel average of
// per-rank gradients slightly different from the global weighted mean when shards differ in
// content; `last_sums()` gives the raw sums for callers that want the exact global value.
#pragma once
#include "halo/nn/loss.hpp"
#include "halo/ops/loss.hpp"

namespace halo::nn {

class MSELoss final : public Loss {
 public:
  std::string type() const override { return "MSELoss"; }
  double forward(const Tensor& prediction, const Tensor& target) override;
  Tensor backward() override;
  Tensor gradient(const Tensor& prediction, const Tensor& target) override;

 private:
  Tensor prediction_, target_;
};

class L1Loss final : public Loss {
 public:
  std::string type() const override { return "L1Loss"; }
  double forward(const Tensor& prediction, const Tensor& target) override;
  Tensor backward() override;
  Tensor gradient(const Tensor& prediction, const Tensor& target) override;

 private:
  Tensor prediction_, target_;
};

class WeightedCrossEntropy final : public Loss {
 public:
  /// `class_weights` empty means all 1; labels equal to `ignore_index` are not counted.
  explicit WeightedCrossEntropy(std::vector<double> class_weights = {}, int64_t ignore_index = -100);
  std::string type() const override { return "WeightedCrossEntropy"; }
  /// prediction: logits (N, K) or (N, K, H, W) (any layout); target: labels (N) or (N, H, W), i32 or i64.
  /// Returns 0 when every pixel is ignored.
  double forward(const Tensor& prediction, const Tensor& target) override;
  Tensor backward() override;
  /// On a GPU the normalised gradient formed on the device (ops::cross_entropy_gradient: no
  /// host round trip, so a CUDA graph can capture it, replays included); a bad label found
  /// there gets a zero gradient and is reported by the next forward() or check_labels().
  /// It does not set last_sums() or what backward() uses. The first call on a device uploads
  /// the class weights: make it outside a capture (an eager warm-up step). Elsewhere
  /// forward() then backward().
  Tensor gradient(const Tensor& prediction, const Tensor& target) override;
  /// Throws ShapeError when a gradient() (or a replay of a captured one) since the last
  /// check met a label outside [0, K) that is not ignore_index. Waits for the device.
  void check_labels();
  /// Weighted loss sum and weight sum of the last forward.
  ops::CrossEntropySums last_sums() const { return sums_; }

 private:
  ops::CrossEntropyOptions options_;
  Tensor logits_, labels_;
  ops::CrossEntropySums sums_;
  Tensor device_weights_, first_bad_;  // gradient()'s, on the logits' device
  Tensor checked_labels_;              // the labels of the last gradient(), named in its error
  int64_t checked_classes_ = 0;
};

}  // namespace halo::nn
