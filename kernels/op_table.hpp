// The op tables: for each device kind, one struct of kernel entry points per op family,
// filled by the backend (kernels/cpu/*_ops.cpp, kernels/cuda/*_ops.cpp) and looked up by the
// op entry points in src/ops (and src/optim/update_rules.cpp) from their tensors' device.
//
// An entry receives arguments the entry point has already checked where the check does not
// depend on the backend (shapes, matching operands, valid options); it checks what only it
// knows (supported dtypes, layouts) and computes. Lookups cost one array index per op call,
// never per element.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends.hpp"
#include "halo/ops/batchnorm.hpp"
#include "halo/ops/concat.hpp"
#include "halo/ops/conv.hpp"
#include "halo/ops/elementwise.hpp"
#include "halo/ops/loss.hpp"
#include "halo/ops/matmul.hpp"
#include "halo/ops/metrics.hpp"
#include "halo/ops/pool.hpp"
#include "halo/ops/registry.hpp"
#include "halo/ops/upsample.hpp"
#include "halo/optim/update_rules.hpp"

namespace halo::ops {

/// Element-wise kernels over dense tensors treated as flat arrays. Operands passed together
/// share shape, dtype, device and layout (the entry points align them).
struct ElementwiseKernels {
  Tensor (*activation_forward)(Activation a, const Tensor& x, double slope);
  /// From the activation's output y (relu and leaky_relu read its sign).
  Tensor (*activation_backward)(Activation a, const Tensor& y, const Tensor& grad_y, double slope);
  /// y = alpha * x + beta * y; y's old contents are not read when beta is 0.
  void (*axpby)(Tensor& y, double alpha, const Tensor& x, double beta);
  void (*scale)(Tensor& x, double alpha);
  Tensor (*mul)(const Tensor& a, const Tensor& b);
  /// sum a[i] * b[i], or sum a[i] when b is null.
  double (*dot)(const Tensor& a, const Tensor* b);
  /// key_on_device: see ops::dropout_mask (only the GPU tables take one).
  Tensor (*dropout_mask)(const Tensor& like, double p, uint64_t seed, uint64_t step, const uint64_t* key_on_device);
};

/// Convolution passes on a plan made for this device kind (its backend state is theirs).
struct ConvKernels {
  /// Validates the plan for this backend and picks the kernel; called by ConvPlan's constructor.
  void (*prepare)(ConvPlan& plan, ConvBackend requested);
  Tensor (*forward)(ConvPlan& plan, const Tensor& x, const Tensor& w, const Tensor& bias);
  Tensor (*backward_data)(ConvPlan& plan, const Tensor& grad_y, const Tensor& w);
  /// act_output: the activation's output when grad_y is the gradient AFTER the activation
  /// (only for plans where fuses_activation_backward is true), else undefined.
  void (*backward_weights)(ConvPlan& plan, const Tensor& x, const Tensor& grad_y, const Tensor& grad_w,
                           const Tensor& grad_bias, bool accumulate, const Tensor& act_output);
  /// Whether backward_weights can undo the epilogue's activation itself for this plan.
  bool (*fuses_activation_backward)(const ConvPlan& plan);
  /// dL/d(pre-activation) from dL/dy and y (layout of y), for relu and leaky_relu, into
  /// `out` (y's shape and strides; may be y itself: element by element, in place is safe),
  /// or into a new tensor when `out` is undefined. Returns the result.
  Tensor (*epilogue_backward)(const Tensor& grad_y, const Tensor& y, const ConvEpilogue& e, const Tensor& out);
};

struct PoolKernels {
  Tensor (*forward)(const Tensor& x, const PoolConfig& cfg, PoolPlan* plan, const std::string& who);
  Tensor (*backward)(const Tensor& dy, const Tensor& x, const PoolConfig& cfg, PoolPlan* plan,
                     const std::string& who);
  Tensor (*global_avg_forward)(const Tensor& x, bool keep_dims, const std::string& who);
  Tensor (*global_avg_backward)(const Tensor& dy, const Shape& input_shape, MemoryFormat format,
                                const std::string& who);
};

struct BatchNormKernels {
  Tensor (*forward_train)(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                          Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                          const StatsReducer& reducer, const std::string& who);
  Tensor (*forward_eval)(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                         const Tensor& running_var, const BatchNormConfig& cfg, BatchNormSaved* saved,
                         const std::string& who);
  BatchNormGrads (*backward)(const Tensor& dy, const Tensor& x, const Tensor& weight, const BatchNormSaved& saved,
                             bool need_dx, const StatsReducer& reducer, const std::string& who,
                             const Tensor& relu_output);
};

struct MatmulKernels {
  /// c = alpha * op(a) * op(b) + beta * c on 2-D tensors whose shapes fit.
  void (*gemm)(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta, Tensor& c);
  Tensor (*linear_forward)(const Tensor& x, const Tensor& weight, const Tensor& bias);
  Tensor (*linear_backward_data)(const Tensor& grad_y, const Tensor& weight);
  void (*linear_backward_params)(const Tensor& x, const Tensor& grad_y, Tensor& grad_weight, Tensor& grad_bias);
};

struct LossKernels {
  /// mean of (p - t)^2 (squared) or |p - t| over one shape; `what` names the loss in errors.
  double (*error_forward)(const Tensor& p, const Tensor& t, bool squared, const char* what);
  /// d mean(error) / dp.
  Tensor (*error_backward)(const Tensor& p, const Tensor& t, bool squared, const char* what);
  /// Weighted sums over checked logits and labels; with `grad` also the gradient, scaled by
  /// `scale` and laid out like the logits the kernel used.
  CrossEntropySums (*cross_entropy)(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o,
                                    Tensor* grad, double scale);
  /// ops::cross_entropy_gradient on the device (checked arguments); null where the device
  /// has no such path (the CPU: nothing there needs one).
  Tensor (*cross_entropy_gradient)(const Tensor& logits, const Tensor& labels, const Tensor& device_weights,
                                   int64_t ignore_index, Tensor& first_bad);
};

struct MetricsKernels {
  SumCount (*mae)(const Tensor& prediction, const Tensor& target);
  IoUCounts (*iou_counts)(const Tensor& logits, const Tensor& labels, int64_t ignore_index);
};

/// Channel concatenation: the entry points check the operands and allocate the results in
/// the layout they chose (channels-last or contiguous).
struct ConcatKernels {
  /// Copies each input into its channel range of `out`, in order.
  void (*concat)(Tensor& out, const std::vector<Tensor>& inputs);
  /// Copies each channel range of `x`, in order, into `pieces`.
  void (*split)(const Tensor& x, std::vector<Tensor>& pieces);
};

struct UpsampleKernels {
  Tensor (*forward)(const Tensor& x, const UpsampleConfig& cfg, const std::string& who);
  Tensor (*backward)(const Tensor& dy, const Shape& input_shape, const UpsampleConfig& cfg, MemoryFormat format,
                     const std::string& who);
};

/// Optimizer updates on f32 parameters and their state, one parameter at a time.
struct OptimKernels {
  void (*sgd)(Tensor& w, const Tensor& g, Tensor* momentum_buf, const optim::SgdStep& s);
  /// Many parameters of one device at once (checked by the caller); null: sgd per parameter.
  void (*sgd_many)(const std::vector<optim::SgdItem>& items, const optim::SgdStep& s);
  void (*adam)(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const optim::AdamStep& s);
  double (*lamb)(Tensor& w, const Tensor& g, Tensor& m, Tensor& v, const optim::LambStep& s);
  double (*lars)(Tensor& w, const Tensor& g, Tensor& v, const optim::LarsStep& s);
  /// Sum of squares of every element of all the tensors (one device), accumulated in double:
  /// on a GPU one host synchronisation for the list, not one per tensor.
  double (*sum_squares)(const std::vector<const Tensor*>& ts);
  void (*scale)(Tensor& t, double factor);
};

/// What one device kind provides; a null family has no kernels there.
struct OpTable {
  const ElementwiseKernels* elementwise = nullptr;
  const ConvKernels* conv = nullptr;
  const PoolKernels* pool = nullptr;
  const BatchNormKernels* batchnorm = nullptr;
  const MatmulKernels* matmul = nullptr;
  const LossKernels* loss = nullptr;
  const MetricsKernels* metrics = nullptr;
  const ConcatKernels* concat = nullptr;
  const UpsampleKernels* upsample = nullptr;
  const OptimKernels* optim = nullptr;
};

/// The table of a device kind, filled in by its backend's registration (the families it
/// sets replace those registered before). Call only from a backend's register function.
OpTable& op_table_to_fill(DeviceKind kind);

/// The table of a device kind (registering the built-in backends on first use).
const OpTable& op_table(DeviceKind kind);
/// Throws ShapeError naming `who`, the family and the device (and, when the build has no
/// backend for the device at all, how to get one).
[[noreturn]] void throw_no_kernels(OpFamily family, Device dev, std::string_view who);

template <class K>
const K& kernels_or_throw(const K* k, OpFamily family, Device dev, std::string_view who) {
  if (!k) throw_no_kernels(family, dev, who);
  return *k;
}

/// The device an op runs on: that of its first operand (cpu when it is undefined, so that
/// the CPU kernels report the missing operand in their own words).
inline Device device_of(const Tensor& t) { return t.defined() ? t.device() : Device::cpu(); }

// The per-family lookups the entry points use. `who` is a view: most callers pass a literal,
// and no string is built on an op call unless the lookup fails.
inline const ElementwiseKernels& elementwise_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).elementwise, OpFamily::elementwise, d, who);
}
inline const ConvKernels& conv_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).conv, OpFamily::conv, d, who);
}
inline const PoolKernels& pool_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).pool, OpFamily::pool, d, who);
}
inline const BatchNormKernels& batchnorm_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).batchnorm, OpFamily::batchnorm, d, who);
}
inline const MatmulKernels& matmul_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).matmul, OpFamily::matmul, d, who);
}
inline const LossKernels& loss_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).loss, OpFamily::loss, d, who);
}
inline const MetricsKernels& metrics_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).metrics, OpFamily::metrics, d, who);
}
inline const ConcatKernels& concat_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).concat, OpFamily::concat, d, who);
}
inline const UpsampleKernels& upsample_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).upsample, OpFamily::upsample, d, who);
}
inline const OptimKernels& optim_kernels(Device d, std::string_view who) {
  return kernels_or_throw(op_table(d.kind).optim, OpFamily::optim, d, who);
}

}  // namespace halo::ops
