// Global-norm gradient clipping over a set of parameters (after the gradient allreduce,
// every rank computes the same norm and takes the same decision).
#pragma once
#include <vector>

#include "halo/nn/parameter.hpp"

namespace halo::optim {

/// sqrt of the sum of squares of all gradients, accumulated in double.
double global_grad_norm(const std::vector<nn::Parameter*>& params);
/// Scales all gradients by max_norm / norm when norm > max_norm, so their global norm is
/// exactly max_norm. Returns the norm before clipping. A non-finite norm leaves the
/// gradients untouched (the caller should skip the step).
double clip_grad_norm(const std::vector<nn::Parameter*>& params, double max_norm);

}  // namespace halo::optim
