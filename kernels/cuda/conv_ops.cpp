// The cuda conv table: cuDNN (conv_cudnn.cpp) with the plan's bias and activation epilogue
// and bias gradient on own kernels (ops.cu), f32 or bf16 activations under f32 master weights.
//
// Input channels padded to a multiple of 8: cuDNN's bf16 channels-last (tensor-core)
// kernels want 16-byte channel vectors, and a convolution with fewer input channels (the
// CosmoFlow first layer has 4) falls to slow generic kernels (7.1 of 10.5 ms of the five
// CosmoFlow convolutions on an H100). Such a bf16 convolution runs on zero-padded copies
// of its input and weight, (N, 8k, ...) channels-last, which give the same output; its
// weight gradient is the first C channels of the padded one and its input gradient the
// first C channels of the padded input's. The rule, and HALO_CUDNN_PAD_CHANNELS=0 to turn it
// off (read when a plan is first used), are cuda::padded_input_channels (conv.hpp).
#include <memory>

#include "cuda/conv.hpp"
#include "cuda/elementwise.hpp"
#include "cuda/conv_epilogue.hpp"
#include "cuda/register.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#include "plan_state.hpp"

namespace halo::ops::cuda_kernels {
namespace {

namespace cuda = halo::cuda;

/// GPU plans always run on cuDNN (a requested CPU kernel is not one this backend has, and
/// layers keep one setting for both devices); its state is made by the first pass.
void prepare(ConvPlan& plan, ConvBackend) {
  HALO_CHECK_SHAPE(plan.dtype() == DType::f32 || plan.dtype() == DType::bf16, plan.who(),
                   ": a GPU convolution needs f32 or bf16 activations, got ", name(plan.dtype()));
  if (plan.params().transposed)
    for (int i = 0; i < plan.params().spatial_dims; ++i)
      // The transposed pass runs as the backward-data of the direct convolution whose input
      // has this plan's output shape; that convolution maps back onto the input only when
      // the extra output rows are fewer than a stride.
      HALO_CHECK_T(ConfigError, plan.params().output_padding[size_t(i)] < plan.params().stride[size_t(i)],
                   plan.who(), ": a GPU transposed convolution needs output_padding < stride on every axis (",
                   plan.params().str(), "); use a larger stride or padding, or run this layer on the cpu");
  detail::ConvPlanAccess::choose(plan, ConvBackend::library, "cudnn");
}

/// The cuDNN plan of an ops::ConvPlan, and the weight in the plan's dtype and channels-last
/// layout as forward made it (backward-data of the same step reuses it).
struct CudnnState final : detail::ConvPlanState {
  std::unique_ptr<cuda::ConvPlan> plan;
  MemoryFormat format = MemoryFormat::channels_last;
  Tensor weight;
  /// Input channels padded to this many (0: not padded), and forward's padded input, kept
  /// for the weight gradient of the same step.
  int64_t padded = 0;
  Tensor padded_input;
  const void* padded_from = nullptr;  // the x padded_input was made from
};

/// The first `c` channels of t (N, C', ...) as a view (strides kept; t stays alive with it).
Tensor first_channels(const Tensor& t, int64_t c) {
  Shape s = t.shape();
  s[1] = c;
  return Tensor::from_blob(t.raw_data(), s, t.dtype(), t.device(), t.strides(), [keep = t] {});
}

/// t (N, C, ...) in a new channels-last (N, cp, ...) tensor of dtype dt, channels C.. zero.
Tensor pad_channels(const Tensor& t, int64_t cp, DType dt, const ConvPlan& plan) {
  Shape s = t.shape();
  s[1] = cp;
  Tensor out = Tensor::zeros(s, dt, t.device(), MemoryFormat::channels_last);
  Tensor head = first_channels(out, t.size(1));
  HALO_CHECK_SHAPE(cuda::convert(head, t), plan.who(), ": cannot pad ", t.str(), " to ", cp, " channels");
  return out;
}

CudnnState& cudnn_state(ConvPlan& plan, MemoryFormat format = MemoryFormat::channels_last) {
  auto* st = dynamic_cast<CudnnState*>(detail::ConvPlanAccess::state(plan).get());
  if (st) return *st;
  auto made = std::make_shared<CudnnState>();
  made->format = format;
  cuda::ConvParams cp;
  // A transposed convolution is the adjoint of the direct convolution from its output to its
  // input, with the same weight tensor (Cin, Cout/groups, k...) read as (K, C/groups, k...):
  // its forward is that convolution's backward-data, its backward-data the forward, and its
  // weight gradient the backward-filter with input and output gradient swapped.
  cp.input = plan.params().transposed ? plan.output_shape() : plan.input_shape();
  cp.weight = plan.weight_shape();
  made->padded = cuda::padded_input_channels(plan.input_shape()[1], plan.dtype(), format, plan.params().transposed,
                                             plan.params().groups);
  if (made->padded) cp.input[1] = cp.weight[1] = made->padded;
  for (int i = 0; i < plan.params().spatial_dims; ++i) {
    cp.stride.push_back(int(plan.params().stride[size_t(i)]));
    cp.padding.push_back(int(plan.params().padding[size_t(i)]));
    cp.dilation.push_back(int(plan.params().dilation[size_t(i)]));
  }
  cp.groups = int(plan.params().groups);
  cp.dtype = plan.dtype();
  cp.format = format;  // channels-last is the tensor cores' layout
  made->plan = std::make_unique<cuda::ConvPlan>(cp, plan.device().index);
  detail::ConvPlanAccess::state(plan) = made;
  return *made;
}

void check_gpu(const ConvPlan& plan, const Tensor& t, const Shape& expect, const char* what, bool master) {
  HALO_CHECK_SHAPE(t.defined() && t.shape() == expect && t.device() == plan.device(), plan.who(), ": ", what, " ",
                   t.defined() ? t.str() : "undefined", " does not match the plan (shape ", to_string(expect), " on ",
                   plan.device().str(), ")");
  // Parameters may be f32 masters under bf16 activations (mixed precision).
  HALO_CHECK_SHAPE(t.dtype() == plan.dtype() || (master && t.dtype() == DType::f32), plan.who(), ": ", what, " is ",
                   name(t.dtype()), ", the plan computes in ", name(plan.dtype()));
}

Tensor in_format(const Tensor& t, DType dt, MemoryFormat fmt) {
  Tensor out = Tensor::empty(t.shape(), dt, t.device(), fmt);
  if (t.dtype() == dt && t.strides() == out.strides()) return t;
  out.copy_(t);
  return out;
}

/// The weight and the input as the state's cuDNN plan takes them: its dtype and layout, and
/// zero-padded channels when the state pads.
Tensor plan_weight(const ConvPlan& plan, const CudnnState& st, const Tensor& w) {
  return st.padded ? pad_channels(w, st.padded, plan.dtype(), plan) : in_format(w, plan.dtype(), st.format);
}
Tensor plan_input(const ConvPlan& plan, const CudnnState& st, const Tensor& x) {
  return st.padded ? pad_channels(x, st.padded, plan.dtype(), plan) : in_format(x, plan.dtype(), st.format);
}

/// The forward pass without its epilogue, in the state's layout (see cudnn_state).
void direct_forward(const ConvPlan& plan, const CudnnState& st, const Tensor& x, Tensor& y) {
  if (plan.params().transposed)
    st.plan->backward_data(x, st.weight, y);
  else
    st.plan->forward(x, st.weight, y);
}

Tensor gpu_forward(ConvPlan& plan, const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_gpu(plan, x, plan.input_shape(), "input", false);
  check_gpu(plan, w, plan.weight_shape(), "weight", true);
  if (plan.has_bias()) {
    check_gpu(plan, bias, Shape{plan.output_shape()[1]}, "bias", true);
    HALO_CHECK_SHAPE(bias.dtype() == DType::f32, plan.who(), ": the bias must be f32 on the GPU, got ", bias.str());
  }
  CudnnState* st = &cudnn_state(plan);
  Tensor y;
  auto run = [&] {
    st->weight = plan_weight(plan, *st, w);
    y = Tensor::empty(plan.output_shape(), plan.dtype(), plan.device(), st->format);
    const Tensor xin = plan_input(plan, *st, x);
    if (st->padded) {
      st->padded_input = xin;
      st->padded_from = x.raw_data();
    }
    direct_forward(plan, *st, xin, y);
  };
  try {
    run();
  } catch (const Error&) {
    // cuDNN offers no channels-last algorithm for some f32 shapes (few input channels):
    // the layer then runs in the contiguous layout.
    if (st->format != MemoryFormat::channels_last) throw;
    detail::ConvPlanAccess::state(plan).reset();
    st = &cudnn_state(plan, MemoryFormat::contiguous);
    run();
  }
  const Tensor b = plan.has_bias() ? bias.contiguous() : Tensor();
  if (b.defined() || plan.epilogue().activation != Activation::none) {
    cuda::DeviceGuard g(plan.device().index);
    const int64_t inner = st->format == MemoryFormat::channels_last ? 1 : y.numel() / (y.size(0) * y.size(1));
    cuda::raw::bias_activation(y.raw_data(), plan.dtype() == DType::bf16,
                               b.defined() ? static_cast<const float*>(b.raw_data()) : nullptr, y.numel(),
                               y.size(1), inner, plan.epilogue().activation, float(plan.epilogue().slope),
                               cuda::stream_of(y));
  }
  return y;
}

Tensor gpu_backward_data(ConvPlan& plan, const Tensor& gy, const Tensor& w) {
  check_gpu(plan, gy, plan.output_shape(), "output gradient", false);
  check_gpu(plan, w, plan.weight_shape(), "weight", true);
  CudnnState& st = cudnn_state(plan);
  const Tensor wc = st.weight.defined() ? st.weight : plan_weight(plan, st, w);
  Tensor dx = Tensor::empty(plan.input_shape(), plan.dtype(), plan.device(), st.format);
  if (plan.params().transposed) {
    st.plan->forward(in_format(gy, plan.dtype(), st.format), wc, dx);
  } else if (st.padded) {
    Shape ps = plan.input_shape();
    ps[1] = st.padded;
    Tensor dxp = Tensor::empty(ps, plan.dtype(), plan.device(), st.format);
    st.plan->backward_data(in_format(gy, plan.dtype(), st.format), wc, dxp);
    HALO_CHECK_SHAPE(cuda::convert(dx, first_channels(dxp, dx.size(1))), plan.who(), ": input gradient ", dx.str());
  } else {
    st.plan->backward_data(in_format(gy, plan.dtype(), st.format), wc, dx);
  }
  st.weight = Tensor();  // the weights change at the next optimizer step
  return dx;
}

void gpu_backward_weights(ConvPlan& plan, const Tensor& x, const Tensor& gy_in, const Tensor& gw_in,
                          const Tensor& gb_in, bool accumulate) {
  check_gpu(plan, x, plan.input_shape(), "input", false);
  check_gpu(plan, gy_in, plan.output_shape(), "output gradient", false);
  check_gpu(plan, gw_in, plan.weight_shape(), "weight gradient", true);
  CudnnState& st = cudnn_state(plan);
  const Tensor gy = in_format(gy_in, plan.dtype(), st.format);
  // cuDNN writes the filter gradient in the plan's dtype and layout; it is then added (or
  // copied) into the parameter's gradient, converting to f32 and to its layout on the way.
  Shape dws = plan.weight_shape();
  if (st.padded) dws[1] = st.padded;
  Tensor dw = Tensor::empty(dws, plan.dtype(), plan.device(), st.format);
  if (plan.params().transposed) {
    st.plan->backward_filter(gy, in_format(x, plan.dtype(), st.format), dw);
  } else {
    // The padded input forward made, when it was made from this x (the layer hands backward
    // the tensor it saved in forward).
    const bool reuse = st.padded && st.padded_input.defined() && st.padded_from == x.raw_data();
    const Tensor xin = reuse ? st.padded_input : plan_input(plan, st, x);
    st.plan->backward_filter(xin, gy, dw);
    st.padded_input = Tensor();
    st.padded_from = nullptr;
  }
  Tensor gw = gw_in;
  HALO_CHECK_SHAPE(cuda::convert(gw, st.padded ? first_channels(dw, plan.weight_shape()[1]) : dw, accumulate),
                   plan.who(), ": weight gradient ", gw.str(), " must be f32 or bf16");
  if (gb_in.defined()) {
    HALO_CHECK_SHAPE(gb_in.dtype() == DType::f32 && gb_in.is_contiguous() && gb_in.numel() == plan.output_shape()[1] &&
                         gb_in.device() == plan.device(),
                     plan.who(), ": the bias gradient ", gb_in.str(), " must be a contiguous f32 vector on the GPU");
    Tensor gb = gb_in;
    if (!accumulate) gb.zero_();
    cuda::DeviceGuard g(plan.device().index);
    const int64_t inner = st.format == MemoryFormat::channels_last ? 1 : gy.numel() / (gy.size(0) * gy.size(1));
    cuda::raw::channel_sums_add(gy.raw_data(), plan.dtype() == DType::bf16, gy.numel(), gy.size(1), inner,
                                static_cast<float*>(gb.raw_data()), cuda::stream_of(gy));
  }
}


void backward_weights(ConvPlan& plan, const Tensor& x, const Tensor& grad_y, const Tensor& grad_w,
                      const Tensor& grad_bias, bool accumulate, const Tensor&) {
  gpu_backward_weights(plan, x, grad_y, grad_w, grad_bias, accumulate);
}

bool fuses_activation_backward(const ConvPlan&) { return false; }

Tensor epilogue_backward(const Tensor& g, const Tensor& y, const ConvEpilogue& e, const Tensor& into) {
  Tensor out = into.defined() ? into : Tensor::empty_strided(y.shape(), y.strides(), y.dtype(), y.device());
  cuda::activation_backward(e.activation, y, y, g, out, float(e.slope));
  return out;
}

}  // namespace
}  // namespace halo::ops::cuda_kernels

namespace halo::kernels::cuda_ops {

void register_conv(ops::OpTable& t) {
  namespace k = ops::cuda_kernels;
  static const ops::ConvKernels table = {k::prepare,  k::gpu_forward, k::gpu_backward_data, k::backward_weights,
                                         k::fuses_activation_backward, k::epilogue_backward};
  t.conv = &table;
}

}  // namespace halo::kernels::cuda_ops
