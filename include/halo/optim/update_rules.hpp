// One function per optimizer update rule, on tensors. Each checks its arguments and picks
// the kernel from the parameter's device and dtype, so a device backend adds a kernel here
// and the optimizers above stay unchanged. Parameter, gradient and state tensors must
// agree in shape, dtype, device and layout (state is created with zeros_like(value)).
#pragma once
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::optim {

struct SgdStep {
  double lr = 0, momentum = 0, weight_decay = 0;
  bool nesterov = false;
};
/// g' = g + wd*w; buf = mu*buf + g'; d = nesterov ? g' + mu*buf : buf; w -= lr*d.
/// `momentum_buf` may be null when mu == 0 (then d = g').
void sgd_update(Tensor& w, const Tensor& g, Tensor* momentum_buf, const SgdStep& s);

/// One parameter of sgd_update_many: its tensors and its own weight decay.
struct SgdItem {
  Tensor* w = nullptr;
  const Tensor* g = nullptr;
  Tensor* momentum_buf = nullptr;  ///< null when the momentum is 0
  double weight_decay = 0;
};
/// sgd_update of every item, with lr, momentum and nesterov from `s` (its weight_decay is
/// ignored: each item has its own). On a GPU the items go to the device in one kernel launch
/// per 64 parameters instead of one each: for the small tensors of a step (biases,
/// BatchNorm scales, dense layers) the launches cost more than the bytes.
void sgd_update_many(const std::vector<SgdItem>& items, const SgdStep& s);

struct AdamStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false;        ///< AdamW: w *= 1 - lr*wd before the step; else L2 in g
  double bias1 = 1, bias2 = 1;   ///< 1 - beta1^t and 1 - beta2^t
};
/// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; w -= lr * (m/bias1) / (sqrt(v/bias2) + eps).
void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamStep& s);

struct LambStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-6, weight_decay = 0;
  double bias1 = 1, bias2 = 1;
  double max_trust = 0;  ///< clamps the trust ratio from above when > 0
  /// GPU only: a device double where the kernels leave the trust ratio. The rule then forms
  /// it on the device and returns NaN without waiting for the GPU (nothing in the update
  /// reads back, so a CUDA graph can capture it). Null: the ratio is read back and returned
  /// (one host synchronisation per parameter).
  double* device_trust = nullptr;
};
/// u = (m/bias1)/(sqrt(v/bias2)+eps) + wd*w; r = ||w||/||u|| (1 if either is 0); w -= lr*r*u.
/// Returns the trust ratio used (NaN with LambStep::device_trust).
double lamb_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const LambStep& s);

struct LarsStep {
  double lr = 0, momentum = 0.9, weight_decay = 0, trust_coefficient = 0.001, eps = 0;
  bool adapt = true;  ///< false: plain momentum SGD without decay (biases, norm scales)
};
/// local = eta*||w|| / (||g|| + wd*||w|| + eps) (1 if a norm is 0 or !adapt);
/// v = mu*v + lr*local*(g + wd*w); w -= v. Returns the local learning-rate factor.
double lars_update(Tensor& w, const Tensor& g, Tensor& v, const LarsStep& s);

/// Sum of squares of all elements, accumulated in double.
double sum_squares(const Tensor& t);
/// The same over every element of all the tensors: one reduction per device (on a GPU one
/// host synchronisation for all its tensors: a global gradient norm, the finiteness check).
double sum_squares(const std::vector<const Tensor*>& ts);
/// t *= factor, in place.
void scale_inplace(Tensor& t, double factor);

}  // namespace halo::optim
