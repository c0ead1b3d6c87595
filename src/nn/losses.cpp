#include "halo/nn/losses.hpp"

#include "halo/cuda/runtime.hpp"

namespace halo::nn {

namespace {
void require_forward(const Tensor& t, const std::string& who) {
  HALO_CHECK(t.defined(), who, ": backward called before forward");
}
}  // namespace

namespace {
// Mixed precision: a bf16 prediction against an f32 target is compared in f32 (a few values
// per sample), and its gradient handed back in bf16, the type the model's output has.
bool mixed(const Tensor& prediction, const Tensor& target) {
  return prediction.dtype() == DType::bf16 && target.dtype() == DType::f32;
}
Tensor in_f32(const Tensor& prediction, const Tensor& target) {
  return mixed(prediction, target) ? prediction.to(DType::f32) : prediction;
}
Tensor like_prediction(const Tensor& grad, const Tensor& prediction) {
  return grad.dtype() == prediction.dtype() ? grad : grad.to(prediction.dtype());
}
}  // namespace

double MSELoss::forward(const Tensor& prediction, const Tensor& target) {
  prediction_ = prediction;
  target_ = target;
  return ops::mse_forward(in_f32(prediction, target), target);
}

Tensor MSELoss::backward() {
  require_forward(prediction_, type());
  return like_prediction(ops::mse_backward(in_f32(prediction_, target_), target_), prediction_);
}

Tensor MSELoss::gradient(const Tensor& prediction, const Tensor& target) {
  prediction_ = prediction;
  target_ = target;
  return backward();
}

double L1Loss::forward(const Tensor& prediction, const Tensor& target) {
  prediction_ = prediction;
  target_ = target;
  return ops::l1_forward(in_f32(prediction, target), target);
}

Tensor L1Loss::backward() {
  require_forward(prediction_, type());
  return like_prediction(ops::l1_backward(in_f32(prediction_, target_), target_), prediction_);
}

Tensor L1Loss::gradient(const Tensor& prediction, const Tensor& target) {
  prediction_ = prediction;
  target_ = target;
  return backward();
}

WeightedCrossEntropy::WeightedCrossEntropy(std::vector<double> class_weights, int64_t ignore_index) {
  for (double w : class_weights)
    HALO_CHECK_T(ConfigError, w >= 0.0, "WeightedCrossEntropy: class weights must be >= 0, got ", w);
  options_.class_weights = std::move(class_weights);
  options_.ignore_index = ignore_index;
}

double WeightedCrossEntropy::forward(const Tensor& prediction, const Tensor& target) {
  check_labels();
  logits_ = prediction;
  labels_ = target;
  sums_ = ops::cross_entropy_forward(prediction, target, options_);
  return sums_.weight > 0 ? sums_.loss / sums_.weight : 0.0;
}

Tensor WeightedCrossEntropy::backward() {
  require_forward(logits_, type());
  const double scale = sums_.weight > 0 ? 1.0 / sums_.weight : 0.0;
  return ops::cross_entropy_backward(logits_, labels_, options_, scale);
}

Tensor WeightedCrossEntropy::gradient(const Tensor& prediction, const Tensor& target) {
  if (!prediction.defined() || !ops::has_cross_entropy_gradient(prediction.device())) return Loss::gradient(prediction, target);
  // Uploaded once per device (outside any capture: the first step runs eagerly).
  if (!first_bad_.defined() || first_bad_.device() != prediction.device()) {
    check_labels();  // what the other device found, before its flag goes
    first_bad_ = Tensor::from_vector<int64_t>({ops::kNoBadLabel}, {1}).to(prediction.device());
    device_weights_ = options_.class_weights.empty()
                          ? Tensor()
                          : Tensor::from_vector(options_.class_weights, {int64_t(options_.class_weights.size())})
                                .to(prediction.device());
  }
  Tensor g = ops::cross_entropy_gradient(prediction, target, device_weights_, options_.ignore_index, first_bad_);
  checked_labels_ = target;
  checked_classes_ = prediction.size(1);
  return g;  // in the logits' dtype and layout
}

void WeightedCrossEntropy::check_labels() {
  if (!first_bad_.defined()) return;  // no gradient() on a device yet
  // Whatever stream the gradient (or a graph replaying it) ran on: wait for the device.
  if (first_bad_.device().is_cuda()) cuda::synchronize(first_bad_.device().index);
  const int64_t first = first_bad_.to_vector<int64_t>()[0];
  if (first == ops::kNoBadLabel) return;
  // Re-armed in place: a captured graph holds this buffer's address.
  first_bad_.copy_(Tensor::from_vector<int64_t>({ops::kNoBadLabel}, {1}));
  throw ShapeError(str("cross_entropy: a label at flat position ", first, " of labels ", checked_labels_.str(),
                       " is outside [0, ", checked_classes_, ") and is not the ignore_index ", options_.ignore_index, " (found by a gradient() on ",
                       first_bad_.device().str(), ")"));
}

}  // namespace halo::nn
