// LAMB: Adam's direction plus decoupled decay, scaled per parameter tensor by the trust
// ratio ||w|| / ||update|| (1 when either norm is zero), for large-batch training.
// Decay applies only to parameters with weight_decay = true; the trust ratio to all.
#pragma once
#include "halo/optim/optimizer.hpp"

namespace halo::optim {

struct LAMBOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-6;
  double weight_decay = 0.0;
  bool bias_correction = true;
  double max_trust = 0.0;  ///< upper clamp on the trust ratio; 0 = none
};

class LAMB : public Optimizer {
 public:
  LAMB(std::vector<nn::Parameter*> params, const LAMBOptions& o);
  std::string type() const override { return "LAMB"; }
  const LAMBOptions& options() const { return o_; }
  /// Trust ratios of the last step, per parameter (for logging). On a GPU they stay on the
  /// device during the step (no host synchronisation per parameter) and are read back here.
  const std::vector<double>& last_trust_ratios() const;

 protected:
  std::vector<std::string> slot_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  void update(size_t i, nn::Parameter& p) override;

 private:
  LAMBOptions o_;
  mutable std::vector<double> trust_;
  Tensor device_trust_;  // one double per parameter, where the GPU kernels leave the ratios
};

}  // namespace halo::optim
