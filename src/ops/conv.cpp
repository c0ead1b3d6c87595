// Convolution entry points: parameters, shapes and the plan's common checks (errors name the
// caller and the shapes), then the conv kernels of the plan's device (op_table.hpp).
#include "halo/ops/conv.hpp"

#include <algorithm>
#include <cmath>

#include "op_table.hpp"

namespace halo::ops {

const char* name(ConvBackend b) {
  switch (b) {
    case ConvBackend::automatic: return "automatic";
    case ConvBackend::reference: return "reference";
    case ConvBackend::library: return "library";
    case ConvBackend::first_layer: return "first_layer";
    case ConvBackend::depthwise: return "depthwise";
  }
  return "?";
}


ConvParams ConvParams::uniform(int spatial_dims, int64_t stride, int64_t padding, int64_t dilation, int64_t groups,
                               bool transposed, int64_t output_padding) {
  ConvParams p;
  p.spatial_dims = spatial_dims;
  const size_t n = spatial_dims > 0 ? size_t(spatial_dims) : 0;
  p.stride.assign(n, stride);
  p.padding.assign(n, padding);
  p.dilation.assign(n, dilation);
  p.output_padding.assign(n, output_padding);
  p.groups = groups;
  p.transposed = transposed;
  return p;
}

static std::string vec_str(const std::vector<int64_t>& v) { return to_string(Shape(v)); }

std::string ConvParams::str() const {
  return halo::str(spatial_dims, "d ", transposed ? "transposed " : "", "stride ", vec_str(stride), " padding ",
                   vec_str(padding), " dilation ", vec_str(dilation), " groups ", groups,
                   transposed ? " output_padding " + vec_str(output_padding) : std::string());
}

void ConvParams::validate(const std::string& who) const {
  HALO_CHECK_T(ConfigError, spatial_dims == 2 || spatial_dims == 3, who, ": convolutions have 2 or 3 spatial dims, got ",
               spatial_dims);
  const size_t n = size_t(spatial_dims);
  HALO_CHECK_T(ConfigError,
               stride.size() >= n && padding.size() >= n && dilation.size() >= n &&
                   (!transposed || output_padding.size() >= n),
               who, ": stride/padding/dilation need ", n, " values (", str(), ")");
  HALO_CHECK_T(ConfigError, groups >= 1, who, ": groups must be >= 1, got ", groups);
  for (size_t i = 0; i < n; ++i) {
    HALO_CHECK_T(ConfigError, stride[i] >= 1 && dilation[i] >= 1 && padding[i] >= 0, who,
                 ": stride and dilation must be >= 1 and padding >= 0 (", str(), ")");
    if (transposed)
      HALO_CHECK_T(ConfigError, output_padding[i] >= 0 && output_padding[i] < std::max(stride[i], dilation[i]), who,
                   ": output_padding must be in [0, max(stride, dilation)) (", str(), ")");
  }
}

Shape conv_weight_shape(int64_t in_channels, int64_t out_channels, const std::vector<int64_t>& kernel,
                        const ConvParams& p) {
  Shape w = p.transposed ? Shape{in_channels, out_channels / p.groups} : Shape{out_channels, in_channels / p.groups};
  for (int i = 0; i < p.spatial_dims; ++i) w.push_back(kernel.at(size_t(i)));
  return w;
}

Shape conv_output_shape(const Shape& x, const Shape& w, const ConvParams& p, const std::string& who) {
  p.validate(who);
  const size_t nd = size_t(p.spatial_dims);
  HALO_CHECK_SHAPE(x.size() == nd + 2, who, ": input ", to_string(x), " should be (N, C, ", nd,
                   " spatial dims) for a ", nd, "d convolution");
  HALO_CHECK_SHAPE(w.size() == nd + 2, who, ": weight ", to_string(w), " should have ", nd + 2, " dims");
  const int64_t G = p.groups;
  int64_t cin = x[1], cout;
  if (!p.transposed) {
    HALO_CHECK_SHAPE(cin % G == 0 && w[0] % G == 0 && w[1] * G == cin, who, ": input ", to_string(x), " has ", cin,
                     " channels but weight ", to_string(w), " with groups ", G, " expects ", w[1] * G);
    cout = w[0];
  } else {
    HALO_CHECK_SHAPE(cin % G == 0 && w[0] == cin, who, ": input ", to_string(x), " has ", cin,
                     " channels but transposed weight ", to_string(w), " expects ", w[0]);
    cout = w[1] * G;
  }
  Shape y{x[0], cout};
  for (size_t i = 0; i < nd; ++i) {
    const int64_t k = w[2 + i], ext = p.dilation[i] * (k - 1) + 1;
    int64_t o;
    if (!p.transposed)
      o = (x[2 + i] + 2 * p.padding[i] - ext) / p.stride[i] + 1;
    else
      o = (x[2 + i] - 1) * p.stride[i] - 2 * p.padding[i] + ext + p.output_padding[i];
    HALO_CHECK_SHAPE(x[2 + i] + 2 * p.padding[i] >= ext || p.transposed, who, ": input ", to_string(x),
                     " is smaller than the dilated kernel of weight ", to_string(w), " (", p.str(), ")");
    HALO_CHECK_SHAPE(o >= 1, who, ": input ", to_string(x), " with weight ", to_string(w), " (", p.str(),
                     ") gives an empty output");
    y.push_back(o);
  }
  return y;
}

double conv_flops(const Shape& x, const Shape& w, const ConvParams& p) {
  // Every multiply-add pairs one weight element with one point of the larger ("direct
  // output") grid: the output for a convolution, the input for a transposed one.
  const Shape y = conv_output_shape(x, w, p, "conv_flops");
  const Shape& grid = p.transposed ? x : y;
  double pts = double(grid[0]);
  for (size_t i = 2; i < grid.size(); ++i) pts *= double(grid[i]);
  return 2.0 * pts * double(halo::numel(w));
}

ConvPlan::ConvPlan(const Shape& input, const Shape& weight, const ConvParams& p, DType dtype, Device dev,
                   ConvEpilogue epilogue, bool has_bias, ConvBackend backend, std::string who, ConvLayout layout)
    : input_(input), weight_(weight), params_(p), epilogue_(epilogue), has_bias_(has_bias), dtype_(dtype),
      device_(dev), layout_(layout), who_(std::move(who)) {
  output_ = conv_output_shape(input, weight, p, who_);
  HALO_CHECK_T(ConfigError,
               epilogue.activation == Activation::none || epilogue.activation == Activation::relu ||
                   epilogue.activation == Activation::leaky_relu,
               who_, ": a convolution fuses only none, relu or leaky_relu, not ", name(epilogue.activation),
               " (add the activation as its own layer)");
  HALO_CHECK_T(ConfigError, epilogue.activation != Activation::leaky_relu || epilogue.slope > 0, who_,
               ": leaky_relu needs a slope > 0 (its backward reads the sign of the output), got ", epilogue.slope);
  conv_kernels(dev, who_).prepare(*this, backend);
}

Tensor conv_forward(ConvPlan& plan, const Tensor& x, const Tensor& w, const Tensor& bias) {
  HALO_CHECK(plan.defined(), "conv_forward: the plan is empty");
  HALO_CHECK_SHAPE(plan.has_bias() || !bias.defined(), plan.who(), ": a bias was given to a plan made without one");
  return conv_kernels(plan.device(), plan.who()).forward(plan, x, w, bias);
}

Tensor conv_backward_data(ConvPlan& plan, const Tensor& grad_y, const Tensor& w) {
  HALO_CHECK(plan.defined(), "conv_backward_data: the plan is empty");
  return conv_kernels(plan.device(), plan.who()).backward_data(plan, grad_y, w);
}

void conv_backward_weights(ConvPlan& plan, const Tensor& x, const Tensor& grad_y, const Tensor& grad_w,
                           const Tensor& grad_bias, bool accumulate) {
  HALO_CHECK(plan.defined(), "conv_backward_weights: the plan is empty");
  conv_kernels(plan.device(), plan.who()).backward_weights(plan, x, grad_y, grad_w, grad_bias, accumulate, Tensor());
}

void conv_backward_weights_through_activation(ConvPlan& plan, const Tensor& x, const Tensor& grad_act,
                                              const Tensor& y, const Tensor& grad_w, const Tensor& grad_bias,
                                              bool accumulate, bool y_expendable) {
  HALO_CHECK(plan.defined(), "conv_backward_weights: the plan is empty");
  const ConvKernels& k = conv_kernels(plan.device(), plan.who());
  const bool fusable = plan.epilogue().activation != Activation::none && y.defined() && y.is_channels_last() &&
                       grad_act.is_channels_last() && grad_act.shape() == plan.output_shape() &&
                       y.shape() == plan.output_shape() && k.fuses_activation_backward(plan);
  if (fusable) return k.backward_weights(plan, x, grad_act, grad_w, grad_bias, accumulate, y);
  const Tensor g = y.defined() ? activation_backward(grad_act, y, plan.epilogue(), y_expendable) : grad_act;
  k.backward_weights(plan, x, g, grad_w, grad_bias, accumulate, Tensor());
}

Tensor activation_backward(const Tensor& grad_y, const Tensor& y, const ConvEpilogue& e, bool into_y) {
  HALO_CHECK_SHAPE(grad_y.shape() == y.shape() && grad_y.dtype() == y.dtype(), "activation_backward: gradient ",
                   grad_y.str(), " does not match output ", y.str());
  if (e.activation == Activation::none) return grad_y;
  HALO_CHECK_SHAPE(y.is_dense(), "activation_backward: output ", y.str(), " is not dense");
  // Both walked as flat arrays in y's layout.
  Tensor g = grad_y, into = into_y ? y : Tensor();
  if (g.strides() != y.strides()) {
    g = Tensor::empty_strided(y.shape(), y.strides(), y.dtype(), y.device());
    g.copy_(grad_y);
    if (!into.defined()) into = g;  // a copy of our own: overwrite it rather than allocate another
  }
  return conv_kernels(y.device(), "activation_backward").epilogue_backward(g, y, e, into);
}

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& p, ConvEpilogue e) {
  ConvPlan plan(x.shape(), w.shape(), p, x.dtype(), x.device(), e, bias.defined());
  return conv_forward(plan, x, w, bias);
}

}  // namespace halo::ops
