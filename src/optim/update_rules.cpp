// The update rules: argument checks, then the kernels of the parameter's device
// (op_table.hpp; each backend's are kernels/<backend>/optim_ops.cpp).
#include "halo/optim/update_rules.hpp"

#include <algorithm>
#include <vector>

#include "op_table.hpp"

namespace halo::optim {

namespace {

void check_pair(const Tensor& w, const Tensor& t, const char* rule, const char* what) {
  HALO_CHECK_SHAPE(t.defined(), rule, ": ", what, " is undefined (parameter ", w.str(), ")");
  HALO_CHECK_SHAPE(t.shape() == w.shape() && t.dtype() == w.dtype() && t.device() == w.device() &&
                       t.strides() == w.strides(),
                   rule, ": ", what, " ", t.str(), " does not match the parameter ", w.str(),
                   " in shape, dtype, device and layout");
}

void check_param(const Tensor& w, const char* rule) {
  HALO_CHECK_SHAPE(w.defined() && w.is_dense(), rule, ": the parameter must be a dense tensor, got ",
                   (w.defined() ? w.str() : "undefined"));
}

}  // namespace

void sgd_update(Tensor& w, const Tensor& g, Tensor* momentum_buf, const SgdStep& s) {
  check_param(w, "sgd_update");
  check_pair(w, g, "sgd_update", "gradient");
  if (momentum_buf) check_pair(w, *momentum_buf, "sgd_update", "momentum buffer");
  ops::optim_kernels(w.device(), "sgd_update").sgd(w, g, momentum_buf, s);
}

void sgd_update_many(const std::vector<SgdItem>& items, const SgdStep& s) {
  if (items.empty()) return;
  bool one_device = true;
  for (const SgdItem& it : items) {
    HALO_CHECK(it.w && it.g, "sgd_update_many: an item without a parameter or gradient");
    check_param(*it.w, "sgd_update");
    check_pair(*it.w, *it.g, "sgd_update", "gradient");
    if (it.momentum_buf) check_pair(*it.w, *it.momentum_buf, "sgd_update", "momentum buffer");
    one_device = one_device && it.w->device() == items[0].w->device();
  }
  const ops::OptimKernels& k = ops::optim_kernels(items[0].w->device(), "sgd_update");
  if (one_device && k.sgd_many) {
    k.sgd_many(items, s);
    return;
  }
  for (const SgdItem& it : items) {
    SgdStep one = s;
    one.weight_decay = it.weight_decay;
    ops::optim_kernels(it.w->device(), "sgd_update").sgd(*it.w, *it.g, it.momentum_buf, one);
  }
}

void adam_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamStep& s) {
  check_param(w, "adam_update");
  check_pair(w, g, "adam_update", "gradient");
  check_pair(w, m, "adam_update", "exp_avg");
  check_pair(w, v, "adam_update", "exp_avg_sq");
  ops::optim_kernels(w.device(), "adam_update").adam(w, g, m, v, s);
}

double lamb_update(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const LambStep& s) {
  check_param(w, "lamb_update");
  check_pair(w, g, "lamb_update", "gradient");
  check_pair(w, m, "lamb_update", "exp_avg");
  check_pair(w, v, "lamb_update", "exp_avg_sq");
  return ops::optim_kernels(w.device(), "lamb_update").lamb(w, g, m, v, s);
}

double lars_update(Tensor& w, const Tensor& g, Tensor& v, const LarsStep& s) {
  check_param(w, "lars_update");
  check_pair(w, g, "lars_update", "gradient");
  check_pair(w, v, "lars_update", "momentum buffer");
  return ops::optim_kernels(w.device(), "lars_update").lars(w, g, v, s);
}

double sum_squares(const Tensor& t) { return sum_squares(std::vector<const Tensor*>{&t}); }

double sum_squares(const std::vector<const Tensor*>& ts) {
  // One reduction per device, in the order the devices first appear.
  std::vector<std::vector<const Tensor*>> by_device;
  for (const Tensor* t : ts) {
    check_param(*t, "sum_squares");
    auto same = std::find_if(by_device.begin(), by_device.end(),
                             [&](const auto& list) { return list.front()->device() == t->device(); });
    if (same == by_device.end()) by_device.push_back({t});
    else same->push_back(t);
  }
  double s = 0;
  for (const auto& list : by_device)
    s += ops::optim_kernels(list.front()->device(), "sum_squares").sum_squares(list);
  return s;
}

void scale_inplace(Tensor& t, double factor) {
  check_param(t, "scale_inplace");
  ops::optim_kernels(t.device(), "scale_inplace").scale(t, factor);
}

}  // namespace halo::optim
