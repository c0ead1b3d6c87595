// BatchNorm: the kernels of the input's device (op_table.hpp; the statistics algebra they
// share is batchnorm_stats.hpp).
#include "halo/ops/batchnorm.hpp"

#include "op_table.hpp"

namespace halo::ops {

Tensor batchnorm_forward_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                               Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                               const StatsReducer& reducer, const std::string& who) {
  HALO_CHECK_SHAPE(x.defined(), who, ": input is undefined");
  return batchnorm_kernels(x.device(), who)
      .forward_train(x, weight, bias, running_mean, running_var, cfg, saved, reducer, who);
}

Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                              const Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                              const std::string& who) {
  HALO_CHECK_SHAPE(x.defined(), who, ": input is undefined");
  return batchnorm_kernels(x.device(), who).forward_eval(x, weight, bias, running_mean, running_var, cfg, saved, who);
}

BatchNormGrads batchnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const BatchNormSaved& saved,
                                  bool need_dx, const StatsReducer& reducer, const std::string& who,
                                  const Tensor& relu_output) {
  HALO_CHECK_SHAPE(x.defined(), who, ": input is undefined");
  return batchnorm_kernels(x.device(), who).backward(dy, x, weight, saved, need_dx, reducer, who, relu_output);
}

}  // namespace halo::ops
