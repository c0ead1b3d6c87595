#include "halo/optim/adam.hpp"

#include <cmath>

#include "halo/optim/update_rules.hpp"
#include "halo/util/error.hpp"

namespace halo::optim {

Adam::Adam(std::vector<nn::Parameter*> params, const AdamOptions& o) : Adam(std::move(params), o, false) {}

Adam::Adam(std::vector<nn::Parameter*> params, const AdamOptions& o, bool decoupled)
    : Optimizer(std::move(params), o.lr), o_(o), decoupled_(decoupled) {
  HALO_CHECK_T(ConfigError, o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, type(), ": betas (", o.beta1,
               ", ", o.beta2, ") must be in [0, 1)");
  HALO_CHECK_T(ConfigError, o.eps > 0, type(), ": eps ", o.eps, " must be > 0");
  HALO_CHECK_T(ConfigError, o.weight_decay >= 0, type(), ": weight_decay ", o.weight_decay, " must be >= 0");
}

void Adam::update(size_t i, nn::Parameter& p) {
  AdamStep s;
  s.lr = lr_;
  s.beta1 = o_.beta1;
  s.beta2 = o_.beta2;
  s.eps = o_.eps;
  s.weight_decay = p.weight_decay ? o_.weight_decay : 0.0;
  s.decoupled = decoupled_;
  s.bias1 = 1 - std::pow(o_.beta1, double(step_));
  s.bias2 = 1 - std::pow(o_.beta2, double(step_));
  adam_update(p.value, p.grad, slot(i, "exp_avg"), slot(i, "exp_avg_sq"), s);
}

}  // namespace halo::optim
