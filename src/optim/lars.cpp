#include "halo/optim/lars.hpp"

#include "halo/optim/update_rules.hpp"
#include "halo/util/error.hpp"

namespace halo::optim {

LARS::LARS(std::vector<nn::Parameter*> params, const LARSOptions& o)
    : Optimizer(std::move(params), o.lr), o_(o), local_(this->params().size(), 1.0) {
  HALO_CHECK_T(ConfigError, o.momentum >= 0 && o.momentum < 1, "LARS: momentum ", o.momentum, " must be in [0, 1)");
  HALO_CHECK_T(ConfigError, o.weight_decay >= 0, "LARS: weight_decay ", o.weight_decay, " must be >= 0");
  HALO_CHECK_T(ConfigError, o.trust_coefficient > 0, "LARS: trust_coefficient ", o.trust_coefficient, " must be > 0");
  HALO_CHECK_T(ConfigError, o.eps >= 0, "LARS: eps ", o.eps, " must be >= 0");
}

void LARS::update(size_t i, nn::Parameter& p) {
  LarsStep s;
  s.lr = lr_;
  s.momentum = o_.momentum;
  s.weight_decay = o_.weight_decay;
  s.trust_coefficient = o_.trust_coefficient;
  s.eps = o_.eps;
  s.adapt = p.weight_decay;
  local_[i] = lars_update(p.value, p.grad, slot(i, "momentum"), s);
}

}  // namespace halo::optim
