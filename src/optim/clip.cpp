#include "halo/optim/clip.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "halo/optim/update_rules.hpp"
#include "halo/util/error.hpp"

namespace halo::optim {

double global_grad_norm(const std::vector<nn::Parameter*>& params) {
  // One reduction per device (on a GPU: one host synchronisation for all the gradients).
  std::vector<std::vector<const Tensor*>> by_device;
  for (const auto* p : params) {
    if (!p->grad.defined()) continue;
    auto same = std::find_if(by_device.begin(), by_device.end(),
                             [&](const auto& list) { return list.front()->device() == p->grad.device(); });
    if (same == by_device.end()) by_device.push_back({&p->grad});
    else same->push_back(&p->grad);
  }
  double s = 0;
  for (const auto& list : by_device) s += sum_squares(list);
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
