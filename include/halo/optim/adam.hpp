// Adam (weight decay as L2 in the gradient) and AdamW (decoupled decay: w *= 1 - lr*wd).
// Decay applies only to parameters with weight_decay = true. State: exp_avg, exp_avg_sq.
#pragma once
#include "halo/optim/optimizer.hpp"

namespace halo::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<nn::Parameter*> params, const AdamOptions& o);
  std::string type() const override { return decoupled_ ? "AdamW" : "Adam"; }
  const AdamOptions& options() const { return o_; }

 protected:
  Adam(std::vector<nn::Parameter*> params, const AdamOptions& o, bool decoupled);
  std::vector<std::string> slot_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  void update(size_t i, nn::Parameter& p) override;

 private:
  AdamOptions o_;
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<nn::Parameter*> params, const AdamOptions& o) : Adam(std::move(params), o, true) {}
};

}  // namespace halo::optim
