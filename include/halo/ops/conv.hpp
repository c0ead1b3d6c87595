// Convolutions (2D and 3D, strided, padded, dilated, grouped incl. depthwise, transposed)
// with explicit forward, backward-data and backward-weights passes.
//
// Tensors: activations are (N, C, spatial...) in any dense layout; the fast CPU path works
// in channels-last and returns channels-last, the reference path returns contiguous.
// Weights are (Cout, Cin/groups, k...) for a convolution and (Cin, Cout/groups, k...) for a
// transposed convolution (the layout of its adjoint), always contiguous.
//
// A ConvPlan is made once per (input shape, weight shape, params, dtype, device) and kept by
// the layer: it holds the backend's primitives, weight copies in the backend's preferred
// format and workspaces, so repeated steps create nothing.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "halo/ops/activation.hpp"
#include "halo/tensor/tensor.hpp"

namespace halo::ops {

/// What forward applies after the convolution, fused where the backend allows:
/// y = act(conv(x, w) + bias).
struct ConvEpilogue {
  Activation activation = Activation::none;
  double slope = 0.01;  ///< negative-side slope of leaky_relu
};

struct ConvParams {
  int spatial_dims = 3;  ///< 2 or 3
  std::vector<int64_t> stride{1, 1, 1};
  std::vector<int64_t> padding{0, 0, 0};
  std::vector<int64_t> dilation{1, 1, 1};
  std::vector<int64_t> output_padding{0, 0, 0};  ///< transposed only: extra size at the high end
  int64_t groups = 1;
  bool transposed = false;

  /// The same stride/padding/dilation on every spatial axis.
  static ConvParams uniform(int spatial_dims, int64_t stride = 1, int64_t padding = 0, int64_t dilation = 1,
                            int64_t groups = 1, bool transposed = false, int64_t output_padding = 0);
  /// Throws ConfigError naming `who` if a value is out of range.
  void validate(const std::string& who) const;
  std::string str() const;
};

/// Weight shape for a layer with these channel counts and kernel sizes.
Shape conv_weight_shape(int64_t in_channels, int64_t out_channels, const std::vector<int64_t>& kernel,
                        const ConvParams& p);
/// Output shape of x (*) w; throws ShapeError naming `who` and the shapes if they do not fit.
Shape conv_output_shape(const Shape& input, const Shape& weight, const ConvParams& p, const std::string& who);
/// Multiply-adds x2 of one forward pass over the whole input (all of its batch).
double conv_flops(const Shape& input, const Shape& weight, const ConvParams& p);

/// Which implementation a plan uses. `automatic` lets the device's backend pick the fastest
/// it has for the dtype and shape; the others force one (tests compare them against the
/// reference). library: the device's vendor library (oneDNN on the CPU, cuDNN on GPUs).
/// first_layer and depthwise are own CPU kernels: the first CosmoFlow layer (few input
/// channels, needs AVX-512), and 2D depthwise convolutions (groups = channels) in f32, chosen
/// automatically at dilation > 1, where oneDNN's backward passes are slow.
enum class ConvBackend { automatic, reference, library, first_layer, depthwise };
const char* name(ConvBackend b);
/// Whether this build has the own first-layer kernel (it needs AVX-512).
bool first_layer_kernel_available();

/// How a plan lays out activations inside its passes where its backend has the choice.
/// channels_last: used as they are; blocked: the library's own blocked formats (oneDNN),
/// reordered from and to channels-last around each pass in plan-owned buffers; automatic:
/// per pass and shape as measured (docs/performance.md). Meant for benchmarks and tests.
enum class ConvLayout { automatic, channels_last, blocked };

namespace detail {
/// The backend's per-plan state (primitives, reordered weights, workspaces): defined and
/// owned by the kernels of the plan's device kind.
struct ConvPlanState;
struct ConvPlanAccess;
}  // namespace detail

class ConvPlan {
 public:
  ConvPlan() = default;
  /// `who` names the caller in errors ("Conv3d 'conv1'"). Throws when the device's backend
  /// cannot run this convolution (or the forced `backend`).
  ConvPlan(const Shape& input, const Shape& weight, const ConvParams& p, DType dtype, Device dev,
           ConvEpilogue epilogue = {}, bool has_bias = false, ConvBackend backend = ConvBackend::automatic,
           std::string who = "conv", ConvLayout layout = ConvLayout::automatic);

  bool defined() const { return !input_.empty(); }
  /// True when this plan serves an input of this shape and dtype (layers rebuild otherwise).
  bool matches(const Shape& input, DType dtype) const { return input == input_ && dtype == dtype_; }
  const Shape& input_shape() const { return input_; }
  const Shape& weight_shape() const { return weight_; }
  const Shape& output_shape() const { return output_; }
  const ConvParams& params() const { return params_; }
  const ConvEpilogue& epilogue() const { return epilogue_; }
  bool has_bias() const { return has_bias_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  /// The implementation the backend chose (never `automatic` once made).
  ConvBackend backend() const { return backend_; }
  ConvLayout layout() const { return layout_; }
  /// The kernel as the backend names it ("first_layer", "onednn blocked-bwd-data", "cudnn", ...).
  const std::string& kernel() const { return kernel_; }
  const std::string& who() const { return who_; }

 private:
  friend struct detail::ConvPlanAccess;
  Shape input_, weight_, output_;
  ConvParams params_;
  ConvEpilogue epilogue_;
  bool has_bias_ = false;
  DType dtype_ = DType::f32;
  Device device_;
  ConvBackend backend_ = ConvBackend::reference;
  ConvLayout layout_ = ConvLayout::automatic;
  std::string kernel_;
  std::string who_;
  std::shared_ptr<detail::ConvPlanState> state_;
};

/// y = act(conv(x, w) + bias). `bias` (shape [Cout]) must be given iff the plan has_bias.
Tensor conv_forward(ConvPlan& plan, const Tensor& x, const Tensor& w, const Tensor& bias = {});
/// dL/dx from dL/dy (taken after the activation has been undone, see activation_backward).
Tensor conv_backward_data(ConvPlan& plan, const Tensor& grad_y, const Tensor& w);
/// dL/dw (and dL/dbias when `grad_bias` is defined) into contiguous tensors, added to their
/// contents when `accumulate` is true, else overwriting them.
void conv_backward_weights(ConvPlan& plan, const Tensor& x, const Tensor& grad_y, const Tensor& grad_w,
                           const Tensor& grad_bias = {}, bool accumulate = true);
/// The same when the data gradient is not needed, from the gradient of the activation's
/// OUTPUT `grad_act` and that output `y`: the activation is undone inside the weight pass
/// where the kernel can fuse it (the first-layer kernel: one pass over the largest tensor
/// of the network instead of two), else by activation_backward first.
/// With `y_expendable`, y's memory may hold the pre-activation gradient afterwards (the
/// caller needs y no more: one output-sized tensor less at the peak of backward).
void conv_backward_weights_through_activation(ConvPlan& plan, const Tensor& x, const Tensor& grad_act,
                                              const Tensor& y, const Tensor& grad_w, const Tensor& grad_bias = {},
                                              bool accumulate = true, bool y_expendable = false);

/// dL/d(pre-activation) from dL/dy and the activation's own output y: relu and leaky_relu
/// with slope > 0 are monotone with the sign of the input, so y alone gives the derivative.
/// Keeps the layout of grad_y. With `into_y`, the result is written over y (same layout as
/// y) instead of into a new tensor.
Tensor activation_backward(const Tensor& grad_y, const Tensor& y, const ConvEpilogue& e, bool into_y = false);

/// One-shot convenience: plans and runs a forward pass.
Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& p, ConvEpilogue e = {});

}  // namespace halo::ops
