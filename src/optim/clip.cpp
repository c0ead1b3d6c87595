#include "halo/optim/clip.hpp"

#include <cmath>
#include <vector>

#include "halo/optim/update_rules.hpp"
#include "halo/util/error.hpp"

namespace halo::optim {

double global_grad_norm(const std::vector<nn::Parameter*>& params) {
  std::vector<const Tensor*> grads;
  for (const auto* p : params)
    if (p->grad.defined()) grads.push_back(&p->grad);
  return std::sqrt(sum_squares(grads));  // one reduction per device
}

double clip_grad_norm(const std::vector<nn::Parameter*>& params, double max_norm) {
  HALO_CHECK_T(ConfigError, max_norm > 0, "clip_grad_norm: max_norm ", max_norm, " must be > 0");
  const double norm = global_grad_norm(params);
  if (std::isfinite(norm) && norm > max_norm) {
    const double factor = max_norm / norm;
    for (auto* p : params)
      if (p->grad.defined()) scale_inplace(p->grad, factor);
  }
  return norm;
}

}  // namespace halo::optim
