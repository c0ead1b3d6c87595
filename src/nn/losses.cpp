#include "halo/nn/losses.hpp"

namespace halo::nn {

namespace {
void require_forward(const Tensor& t, const std::string& who) {
  HALO_CHECK(t.defined(), who, ": backward called before forward");
}
}  // namespace

double MSELoss::forward(const Tensor& prediction, const Tensor& target) {
  prediction_ = prediction;
  target_ = target;
  return ops::mse_forward(prediction, target);
}

Tensor MSELoss::backward() {
  require_forward(prediction_, type());
  return ops::mse_backward(prediction_, target_);
}

double L1Loss::forward(const Tensor& prediction, const Tensor& target) {
  prediction_ = prediction;
  target_ = target;
  return ops::l1_forward(prediction, target);
}

Tensor L1Loss::backward() {
  require_forward(prediction_, type());
  return ops::l1_backward(prediction_, target_);
}

WeightedCrossEntropy::WeightedCrossEntropy(std::vector<double> class_weights, int64_t ignore_index) {
  for (double w : class_weights)
    HALO_CHECK_T(ConfigError, w >= 0.0, "WeightedCrossEntropy: class weights must be >= 0, got ", w);
  options_.class_weights = std::move(class_weights);
  options_.ignore_index = ignore_index;
}

double WeightedCrossEntropy::forward(const Tensor& prediction, const Tensor& target) {
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

}  // namespace halo::nn
