#include "halo/optim/lamb.hpp"

#include <cmath>

#include "halo/optim/update_rules.hpp"
#include "halo/util/error.hpp"

namespace halo::optim {

LAMB::LAMB(std::vector<nn::Parameter*> params, const LAMBOptions& o)
    : Optimizer(std::move(params), o.lr), o_(o), trust_(this->params().size(), 1.0) {
  HALO_CHECK_T(ConfigError, o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "LAMB: betas (", o.beta1,
               ", ", o.beta2, ") must be in [0, 1)");
  HALO_CHECK_T(ConfigError, o.eps > 0, "LAMB: eps ", o.eps, " must be > 0");
  HALO_CHECK_T(ConfigError, o.weight_decay >= 0, "LAMB: weight_decay ", o.weight_decay, " must be >= 0");
  HALO_CHECK_T(ConfigError, o.max_trust >= 0, "LAMB: max_trust ", o.max_trust, " must be >= 0 (0: no clamp)");
}

void LAMB::update(size_t i, nn::Parameter& p) {
  LambStep s;
  s.lr = lr_;
  s.beta1 = o_.beta1;
  s.beta2 = o_.beta2;
  s.eps = o_.eps;
  s.weight_decay = p.weight_decay ? o_.weight_decay : 0.0;
  s.bias1 = o_.bias_correction ? 1 - std::pow(o_.beta1, double(step_)) : 1.0;
  s.bias2 = o_.bias_correction ? 1 - std::pow(o_.beta2, double(step_)) : 1.0;
  s.max_trust = o_.max_trust;
  if (p.value.device().is_cuda()) {
    if (!device_trust_.defined() || device_trust_.device() != p.value.device())
      device_trust_ = Tensor::full({int64_t(trust_.size())}, 1.0, DType::f64).to(p.value.device());
    s.device_trust = device_trust_.data<double>() + i;
  }
  trust_[i] = lamb_update(p.value, p.grad, slot(i, "exp_avg"), slot(i, "exp_avg_sq"), s);
}

const std::vector<double>& LAMB::last_trust_ratios() const {
  if (device_trust_.defined()) {
    const std::vector<double> d = device_trust_.to_vector<double>();
    for (size_t i = 0; i < trust_.size(); ++i)
      if (std::isnan(trust_[i])) trust_[i] = d[i];  // NaN: this step's ratio is on the device
  }
  return trust_;
}

}  // namespace halo::optim
