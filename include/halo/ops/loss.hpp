// Loss functions as ops: values are returned as sums with their normalisers so that
// callers (and distributed reductions) can choose how to average.
#pragma once
#include <cstdint>
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::ops {

/// mean((p - t)^2) over all elements.
double mse_forward(const Tensor& prediction, const Tensor& target);
/// 2 (p - t) / numel, in the prediction's layout.
Tensor mse_backward(const Tensor& prediction, const Tensor& target);
/// mean(|p - t|) over all elements.
double l1_forward(const Tensor& prediction, const Tensor& target);
/// sign(p - t) / numel (0 where p == t), in the prediction's layout.
Tensor l1_backward(const Tensor& prediction, const Tensor& target);

struct CrossEntropyOptions {
  std::vector<double> class_weights;  ///< one per class; empty means all 1
  int64_t ignore_index = -100;        ///< pixels with this label count nowhere
};

/// sum over counted pixels of w_y * -log softmax(logits)_y, and sum of w_y.
struct CrossEntropySums {
  double loss = 0;
  double weight = 0;
};

/// Logits (N, K) or (N, K, spatial...) in contiguous or channels-last layout; labels
/// (N) or (N, spatial...) of dtype i32 or i64. Log-softmax is computed stably
/// (max subtracted). Throws naming the pixel when a label is outside [0, K) and not ignored.
CrossEntropySums cross_entropy_forward(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o);
/// scale * d/dlogits of the summed weighted loss: scale * w_y (softmax - onehot(y)), zero on
/// ignored pixels; in the logits' layout.
Tensor cross_entropy_backward(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o, double scale);

/// first_bad's value while no bad label was met (larger than any pixel index).
constexpr int64_t kNoBadLabel = 0x7f7f7f7f7f7f7f7f;
/// True where cross_entropy_gradient runs (GPUs).
bool has_cross_entropy_gradient(const Device& device);
/// The gradient of the weighted mean, w_y (softmax - onehot(y)) / sum of w_y, formed on the
/// logits' device without a host round trip (so a CUDA graph can capture it).
/// `device_weights`: the class weights already on that device (f64, K) or undefined (all 1).
/// A bad label is not thrown here: its pixel's gradient is zero and the smallest such pixel
/// index is folded into `first_bad` (a one-element i64 tensor on the device that the caller
/// set to kNoBadLabel and reads when it next reads from the device; calls accumulate into
/// it). Labels must be contiguous.
Tensor cross_entropy_gradient(const Tensor& logits, const Tensor& labels, const Tensor& device_weights,
                              int64_t ignore_index, Tensor& first_bad);

}  // namespace halo::ops
