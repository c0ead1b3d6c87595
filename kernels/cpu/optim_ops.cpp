// The cpu optimizer table: f32/f64 update rules (optim.cpp).
#include "cpu/optim.hpp"
#include "cpu/register.hpp"

namespace halo::kernels::cpu {
namespace {

using namespace halo::optim;

void sgd_op(Tensor& w, const Tensor& g, Tensor* momentum_buf, const SgdStep& s) {
  HALO_DISPATCH_FLOAT(w.dtype(), "sgd_update", [&] {
    kernels::cpu::sgd_update<T>(w.data<T>(), g.data<T>(), momentum_buf ? momentum_buf->data<T>() : nullptr,
                                w.numel(), s);
  });
}

void adam_op(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const AdamStep& s) {
  HALO_DISPATCH_FLOAT(w.dtype(), "adam_update", [&] {
    kernels::cpu::adam_update<T>(w.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), w.numel(), s);
  });
}

double lamb_op(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const LambStep& s) {
  return HALO_DISPATCH_FLOAT(w.dtype(), "lamb_update", [&] {
    return kernels::cpu::lamb_update<T>(w.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), w.numel(), s);
  });
}

double lars_op(Tensor& w, const Tensor& g, Tensor& v, const LarsStep& s) {
  return HALO_DISPATCH_FLOAT(w.dtype(), "lars_update", [&] {
    return kernels::cpu::lars_update<T>(w.data<T>(), g.data<T>(), v.data<T>(), w.numel(), s);
  });
}

double sum_squares_op(const std::vector<const Tensor*>& ts) {
  double s = 0;
  for (const Tensor* t : ts)
    s += HALO_DISPATCH_FLOAT(t->dtype(), "sum_squares",
                             [&] { return kernels::cpu::sum_squares<T>(t->data<T>(), t->numel()); });
  return s;
}

void scale_op(Tensor& t, double factor) {
  HALO_DISPATCH_FLOAT(t.dtype(), "scale_inplace", [&] { kernels::cpu::scale<T>(t.data<T>(), t.numel(), factor); });
}

// The CPU needs no many-parameter form: a loop over parameters costs nothing per call.
const ops::OptimKernels kTable = {sgd_op, nullptr, adam_op, lamb_op, lars_op, sum_squares_op, scale_op};

}  // namespace

void register_optim(ops::OpTable& t) { t.optim = &kTable; }

}  // namespace halo::kernels::cpu
