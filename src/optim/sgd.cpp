#include "halo/optim/sgd.hpp"

#include "halo/optim/update_rules.hpp"
#include "halo/util/error.hpp"

namespace halo::optim {

SGD::SGD(std::vector<nn::Parameter*> params, const SGDOptions& o) : Optimizer(std::move(params), o.lr), o_(o) {
  HALO_CHECK_T(ConfigError, o.momentum >= 0 && o.momentum < 1, "SGD: momentum ", o.momentum, " must be in [0, 1)");
  HALO_CHECK_T(ConfigError, o.weight_decay >= 0, "SGD: weight_decay ", o.weight_decay, " must be >= 0");
  HALO_CHECK_T(ConfigError, !o.nesterov || o.momentum > 0, "SGD: Nesterov needs momentum > 0");
}

std::vector<std::string> SGD::slot_names() const {
  if (o_.momentum > 0) return {"momentum"};
  return {};
}

void SGD::update(size_t i, nn::Parameter& p) {
  SgdStep s;
  s.lr = lr_;
  s.momentum = o_.momentum;
  s.nesterov = o_.nesterov;
  s.weight_decay = p.weight_decay ? o_.weight_decay : 0.0;
  sgd_update(p.value, p.grad, o_.momentum > 0 ? &slot(i, "momentum") : nullptr, s);
}

void SGD::update_all() {
  std::vector<SgdItem> items;
  items.reserve(params().size());
  for (size_t i = 0; i < params().size(); ++i) {
    nn::Parameter& p = *params()[i];
    items.push_back({&p.value, &p.grad, o_.momentum > 0 ? &slot(i, "momentum") : nullptr,
                     p.weight_decay ? o_.weight_decay : 0.0});
  }
  SgdStep s;
  s.lr = lr_;
  s.momentum = o_.momentum;
  s.nesterov = o_.nesterov;
  sgd_update_many(items, s);
}

}  // namespace halo::optim
