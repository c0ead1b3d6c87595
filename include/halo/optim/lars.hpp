// LARS: momentum SGD whose step for each parameter tensor is scaled by the local rate
// eta * ||w|| / (||g|| + wd*||w|| + eps). Parameters with weight_decay = false (biases,
// normalisation scales) are excluded from both decay and adaptation, as is usual.
#pragma once
#include "halo/optim/optimizer.hpp"

namespace halo::optim {

struct LARSOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 0.0;
  double trust_coefficient = 0.001;  ///< eta
  double eps = 0.0;
};

class LARS : public Optimizer {
 public:
  LARS(std::vector<nn::Parameter*> params, const LARSOptions& o);
  std::string type() const override { return "LARS"; }
  const LARSOptions& options() const { return o_; }
  /// Local learning-rate factors of the last step, per parameter (for logging).
  const std::vector<double>& last_local_lr() const { return local_; }

 protected:
  std::vector<std::string> slot_names() const override { return {"momentum"}; }
  void update(size_t i, nn::Parameter& p) override;

 private:
  LARSOptions o_;
  std::vector<double> local_;
};

}  // namespace halo::optim
