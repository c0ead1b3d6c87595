#include "halo/optim/clip.hpp"

#include <cmath>

#include "halo/optim/update_rules.hpp"
#include "halo/util/error.hpp"

namespace halo::optim {

double global_grad_norm(const std::vector<nn::Parameter*>& params) {
  double s = 0;
  for (const auto* p : params)
    if (p->grad.defined()) s += sum_squares(p->grad);
  return std::sqrt(s);
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
