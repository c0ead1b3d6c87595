// Stochastic gradient descent with momentum (dampening 0), optional Nesterov, and weight
// decay as L2 added to the gradient of parameters with weight_decay = true.
#pragma once
#include "halo/optim/optimizer.hpp"

namespace halo::optim {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<nn::Parameter*> params, const SGDOptions& o);
  std::string type() const override { return "SGD"; }
  const SGDOptions& options() const { return o_; }

 protected:
  std::vector<std::string> slot_names() const override;
  void update(size_t i, nn::Parameter& p) override;
  /// Every parameter in one sgd_update_many (one launch per 64 parameters on a GPU).
  void update_all() override;

 private:
  SGDOptions o_;
};

}  // namespace halo::optim
