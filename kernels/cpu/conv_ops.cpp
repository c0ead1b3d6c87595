// The cpu conv table: the choice of kernel per plan (reference, oneDNN, the own first-layer
// and depthwise kernels), the mapping of transposed convolutions onto the direct kernels, and
// the plan's state (oneDNN primitives per pass, which passes run on blocked formats).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/bf16_simd.hpp"
#include "cpu/conv.hpp"
#include "cpu/register.hpp"
#include "halo/config.hpp"
#include "plan_state.hpp"

namespace halo::ops::cpu_kernels {
namespace {

namespace kc = halo::kernels::cpu;

kc::ConvGeometry geometry(const ConvPlan& plan) {
  const ConvParams& p = plan.params();
  const Shape& x = plan.input_shape();
  const Shape& y = plan.output_shape();
  const Shape& w = plan.weight_shape();
  // The direct problem: for a transposed conv its output is the direct input.
  const Shape& din = p.transposed ? y : x;
  const Shape& dout = p.transposed ? x : y;
  kc::ConvGeometry g;
  g.spatial_dims = p.spatial_dims;
  g.N = x[0];
  g.G = p.groups;
  g.Cin = din[1];
  g.Cout = dout[1];
  const int off = 3 - p.spatial_dims;  // 2D problems use depth 1
  for (int i = 0; i < p.spatial_dims; ++i) {
    g.in[off + i] = din[2 + size_t(i)];
    g.out[off + i] = dout[2 + size_t(i)];
    g.k[off + i] = w[2 + size_t(i)];
    g.stride[off + i] = p.stride[size_t(i)];
    g.pad[off + i] = p.padding[size_t(i)];
    g.dil[off + i] = p.dilation[size_t(i)];
  }
  return g;
}

bool onednn_available() { return HALO_ENABLE_ONEDNN != 0; }

constexpr const char* kBf16NeedsAvx512 =
    "bf16 convolutions on the CPU need oneDNN's bf16 kernels, which it has not for this CPU (on x86 "
    "they need AVX-512: avx512_core or newer); train in f32 (training.precision=f32)";

bool bf16_supported() {
#if HALO_ENABLE_ONEDNN
  return kc::onednn_bf16_supported();
#else
  return false;
#endif
}


/// The measured choice (docs/performance.md, CosmoFlow layers 2-5): backward-data runs
/// 15-35% faster on oneDNN's blocked formats even with the reorders of its input and output
/// gradient; forward and backward-weights are as fast or faster on channels-last. Blocked
/// formats group 16 channels, so they only pay when the channel counts fill the blocks.
///
/// 2D (DeepLabv3+ shapes, docs/performance.md): backward-data pays on blocked formats only at
/// stride 1 (at stride 2, which is also the forward of every stride-2 transposed convolution,
/// channels-last runs 2x faster), and the weight gradient of 3x3 kernels runs 1.4-1.6x faster
/// blocked (the transposed decoder layers' most of all); 1x1 kernels gain nothing from it.
bool prefer_blocked(const kc::ConvGeometry& g, int pass) {
  if (g.G != 1 || g.Cin % 16 != 0 || g.Cout % 16 != 0) return false;
  if (g.spatial_dims == 3) return pass == 1;
  const bool unit_stride = g.stride[1] == 1 && g.stride[2] == 1;
  const bool spatial_kernel = g.k[1] > 1 || g.k[2] > 1;
  return (pass == 1 && unit_stride) || (pass == 2 && spatial_kernel);
}

struct CpuConvState final : detail::ConvPlanState {
  kc::ConvGeometry geometry;
  /// oneDNN primitives, one slot per pass (0 forward, 1 backward-data, 2 backward-weights
  /// of the direct convolution), made on first use.
  kc::StateSlot pass[3];
  /// Whether oneDNN pass k works on blocked activations.
  bool blocked[3] = {false, false, false};
};

/// Picks the kernel (the fastest this build has for the dtype and shape, or the one asked
/// for, after checking it can run) and, for oneDNN, which passes work on blocked formats.
void prepare(ConvPlan& plan, ConvBackend backend) {
  const std::string& who = plan.who();
  const DType dtype = plan.dtype();
  const ConvParams& p = plan.params();
  const Shape& input = plan.input_shape();
  const Shape& weight = plan.weight_shape();
  HALO_CHECK_SHAPE(dtype == DType::f32 || dtype == DType::f64 || dtype == DType::bf16, who,
                   ": convolution needs f32, f64 or bf16, got ", name(dtype));
  // bf16 (activations, under f32 master weights) runs on oneDNN alone: its bf16 kernels
  // use the CPU's bf16 dot products and accumulate in f32.
  if (dtype == DType::bf16) {
    HALO_CHECK_T(Error, onednn_available(), who, ": bf16 convolutions on the CPU need oneDNN (a build with "
                 "HALO_ENABLE_ONEDNN); train in f32 instead");
    HALO_CHECK_T(Error, bf16_supported(), who, ": ", kBf16NeedsAvx512);
    HALO_CHECK_T(Error, backend == ConvBackend::automatic || backend == ConvBackend::library, who, ": the ",
                 name(backend), " kernel runs f32 only; bf16 convolutions use oneDNN (backend automatic or library)");
  }
  auto st = std::make_shared<CpuConvState>();
  st->geometry = geometry(plan);
  const kc::ConvGeometry& g = st->geometry;
  const bool fast_ok = (dtype == DType::f32 || dtype == DType::bf16) && onednn_available();
  ConvBackend chosen = backend;
  switch (backend) {
    case ConvBackend::automatic:
      if (dtype == DType::f32 && !p.transposed && kc::first_layer_supported(g))
        chosen = ConvBackend::first_layer;
      else if (dtype == DType::f32 && !p.transposed && kc::depthwise_supported(g) && (g.dil[1] > 1 || g.dil[2] > 1))
        chosen = ConvBackend::depthwise;
      else
        chosen = fast_ok ? ConvBackend::library : ConvBackend::reference;
      break;
    case ConvBackend::reference: break;
    case ConvBackend::library:
      HALO_CHECK_T(Error, fast_ok, who, ": the oneDNN convolution needs f32 or bf16 and a build with HALO_ENABLE_ONEDNN");
      break;
    case ConvBackend::depthwise:
      HALO_CHECK_T(Error, dtype == DType::f32 && !p.transposed && kc::depthwise_supported(g), who,
                   ": the depthwise kernel needs f32, a 2D convolution (not transposed) and groups equal to the "
                   "input and output channels; got input ",
                   to_string(input), " weight ", to_string(weight), " (", p.str(), ")");
      break;
    case ConvBackend::first_layer:
      HALO_CHECK_T(Error, dtype == DType::f32 && !p.transposed && kc::first_layer_supported(g), who,
                   ": the first-layer kernel needs f32, 3x3x3 kernels, stride 1, padding 1, no groups, <= 4 "
                   "input and 32 output channels and AVX-512; got input ",
                   to_string(input), " weight ", to_string(weight), " (", p.str(), ")");
      break;
  }
  std::string kernel = name(chosen);
  if (chosen == ConvBackend::library) {
    kernel = "onednn";
    static const char* pass_names[3] = {"fwd", "bwd-data", "bwd-weights"};
    for (int k = 0; k < 3; ++k) {
      st->blocked[k] = plan.layout() == ConvLayout::blocked ||
                       (plan.layout() == ConvLayout::automatic && prefer_blocked(g, k));
      if (st->blocked[k]) kernel += std::string(" blocked-") + pass_names[k];
    }
  }
  detail::ConvPlanAccess::state(plan) = st;
  detail::ConvPlanAccess::choose(plan, chosen, kernel);
}

/// `master`: a parameter or its gradient, which stays f32 under bf16 activations.
void check_tensor(const ConvPlan& plan, const Tensor& t, const Shape& expect, const char* what, bool master = false) {
  HALO_CHECK_SHAPE(t.defined(), plan.who(), ": ", what, " is undefined");
  HALO_CHECK_SHAPE(t.shape() == expect, plan.who(), ": ", what, " has shape ", to_string(t.shape()), ", expected ",
                   to_string(expect), " (input ", to_string(plan.input_shape()), ", weight ",
                   to_string(plan.weight_shape()), ", ", plan.params().str(), ")");
  const DType want = master && plan.dtype() == DType::bf16 ? DType::f32 : plan.dtype();
  HALO_CHECK_SHAPE(t.dtype() == want, plan.who(), ": ", what, " is ", name(t.dtype()), ", the plan for ",
                   name(plan.dtype()), " activations needs ", name(want));
  HALO_CHECK_SHAPE(t.device() == plan.device(), plan.who(), ": ", what, " is on ", t.device().str(),
                   ", the plan is for ", plan.device().str());
}

Tensor channels_last(const Tensor& t) {
  return t.is_channels_last() ? t : t.to_memory_format(MemoryFormat::channels_last);
}

bool is_fast(const ConvPlan& plan) { return plan.backend() != ConvBackend::reference; }

/// The type a value of T is computed in: f32 for bf16 (mixed precision), else T itself.
template <class T>
using Compute = std::conditional_t<std::is_same_v<T, bf16>, float, T>;

/// Adds the bias per channel and applies the activation in place, in either layout. B is the
/// bias's type: T, or f32 (the master) under bf16 activations.
template <class T, class B = T>
void epilogue_inplace(const Tensor& y, const Tensor& bias, const ConvEpilogue& e) {
  using V = Compute<T>;
  T* p = y.data<T>();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const B* b = bc.defined() ? bc.data<B>() : nullptr;
  const int64_t n = y.numel(), C = y.size(1);
  const bool cl = y.is_channels_last() && !y.is_contiguous();
  const int64_t inner = cl ? 1 : n / (y.size(0) * C);
  const V slope = V(e.slope);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    V v = V(p[i]);
    if (b) v += V(b[(i / inner) % C]);
    if (e.activation == Activation::relu)
      v = v > V(0) ? v : V(0);
    else if (e.activation == Activation::leaky_relu)
      v = v > V(0) ? v : v * slope;
    p[i] = T(v);
  }
}

/// Per-channel sum of gy over batch and space, into gb (overwrite or add). G is gy's type:
/// T, or bf16 under mixed precision (summed in double all the same).
template <class T, class G = T>
void bias_grad(const Tensor& gy, const Tensor& gb, bool accumulate) {
  const int64_t C = gy.size(1);
  std::vector<double> sum(size_t(C), 0.0);
  const bool cl = gy.is_channels_last() && !gy.is_contiguous();
  Tensor g = cl ? gy : gy.contiguous();
  const G* p = g.data<G>();
  const int64_t n = g.numel(), inner = cl ? 1 : n / (g.size(0) * C);
  const int64_t outer = n / (C * inner);
  // Each thread sums whole channels (contiguous layout) or keeps private sums
  // (channels-last), then the partial sums are added in a fixed order.
#pragma omp parallel
  {
    std::vector<double> part(size_t(C), 0.0);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < C; ++c) {
        const G* q = p + (o * C + c) * inner;
        double s = 0;
        for (int64_t i = 0; i < inner; ++i) s += double(Compute<G>(q[i]));
        part[size_t(c)] += s;
      }
#pragma omp critical
    for (int64_t c = 0; c < C; ++c) sum[size_t(c)] += part[size_t(c)];
  }
  T* out = gb.data<T>();
  for (int64_t c = 0; c < C; ++c) out[c] = T((accumulate ? double(out[c]) : 0.0) + sum[size_t(c)]);
}

template <class T>
void add_into(const Tensor& dst, const Tensor& src) {
  T* d = dst.data<T>();
  const T* s = src.data<T>();
  const int64_t n = dst.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) d[i] += s[i];
}

template <class T>
void activation_grad(const Tensor& g, const Tensor& y, const Tensor& out, const ConvEpilogue& e) {
  const T* pg = g.data<T>();
  const T* py = y.data<T>();
  T* po = out.data<T>();
  const int64_t n = y.numel();
  const T neg = e.activation == Activation::relu ? T(0) : T(e.slope);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) po[i] = py[i] > T(0) ? pg[i] : pg[i] * neg;
}

/// The same on bf16 tensors (computed in f32, 16 lanes at a time where the CPU has AVX-512).
void activation_grad_bf16(const Tensor& g, const Tensor& y, const Tensor& out, const ConvEpilogue& e) {
  const float s = e.activation == Activation::relu ? 0.0f : float(e.slope);
  kc::map2_bf16(y.numel(), y.data<bf16>(), g.data<bf16>(), out.data<bf16>(),
                [s](auto yv, auto gv) { return kc::leaky_grad(yv, gv, s); });
}

Tensor forward(ConvPlan& plan, const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_tensor(plan, x, plan.input_shape(), "input");
  check_tensor(plan, w, plan.weight_shape(), "weight", true);
  if (plan.has_bias()) check_tensor(plan, bias, Shape{plan.output_shape()[1]}, "bias", true);
  HALO_CHECK_SHAPE(plan.has_bias() || !bias.defined(), plan.who(), ": a bias was given to a plan made without one");
  CpuConvState& st = detail::conv_state<CpuConvState>(plan);
  const kc::ConvGeometry& g = st.geometry;
  const ConvParams& p = plan.params();
  const Tensor wc = w.contiguous();
  const Tensor b = plan.has_bias() ? bias.contiguous() : Tensor();
  if (!is_fast(plan)) {
    Tensor y = Tensor::empty(plan.output_shape(), plan.dtype(), plan.device());
    if (!p.transposed)
      kc::conv_ref_forward(g, x.contiguous(), wc, y);
    else
      kc::conv_ref_backward_data(g, x.contiguous(), wc, y);
    HALO_DISPATCH_FLOAT(plan.dtype(), plan.who(), [&] { epilogue_inplace<T>(y, b, plan.epilogue()); });
    return y;
  }
  Tensor y = Tensor::empty(plan.output_shape(), plan.dtype(), plan.device(), MemoryFormat::channels_last);
  const Tensor xcl = channels_last(x);
  if (plan.backend() == ConvBackend::first_layer) {
    kc::conv_first_layer_forward(g, xcl, wc, b, plan.epilogue(), y);
    return y;
  }
  if (plan.backend() == ConvBackend::depthwise) {
    kc::conv_depthwise_forward(g, xcl, wc, b, plan.epilogue(), y);
    return y;
  }
#if HALO_ENABLE_ONEDNN
  if (!p.transposed) {
    kc::conv_onednn_forward(st.pass[0], g, xcl, wc, b, plan.epilogue(), y, st.blocked[0]);
  } else {
    // The sub-pixel kernels are f32; bf16 takes oneDNN's backward-data primitive.
    if (plan.dtype() == DType::f32 && kc::subpixel_supported(g))
      kc::conv_subpixel_transposed_forward(st.pass[0], g, xcl, wc, y);
    else
      kc::conv_onednn_backward_data(st.pass[0], g, xcl, wc, y, st.blocked[1]);
    if (plan.dtype() == DType::bf16)
      epilogue_inplace<bf16, float>(y, b, plan.epilogue());
    else
      epilogue_inplace<float>(y, b, plan.epilogue());
  }
  return y;
#else
  throw Error(str(plan.who(), ": oneDNN convolution requested in a build without it"));
#endif
}


Tensor backward_data(ConvPlan& plan, const Tensor& grad_y, const Tensor& w) {
  check_tensor(plan, grad_y, plan.output_shape(), "output gradient");
  check_tensor(plan, w, plan.weight_shape(), "weight", true);
  CpuConvState& st = detail::conv_state<CpuConvState>(plan);
  const kc::ConvGeometry& g = st.geometry;
  const ConvParams& p = plan.params();
  const Tensor wc = w.contiguous();
  if (!is_fast(plan)) {
    Tensor gx = Tensor::empty(plan.input_shape(), plan.dtype(), plan.device());
    if (!p.transposed)
      kc::conv_ref_backward_data(g, grad_y.contiguous(), wc, gx);
    else
      kc::conv_ref_forward(g, grad_y.contiguous(), wc, gx);
    return gx;
  }
  Tensor gx = Tensor::empty(plan.input_shape(), plan.dtype(), plan.device(), MemoryFormat::channels_last);
  const Tensor gycl = channels_last(grad_y);
  if (plan.backend() == ConvBackend::first_layer) {
    kc::conv_first_layer_backward_data(g, gycl, wc, gx);
    return gx;
  }
  if (plan.backend() == ConvBackend::depthwise) {
    kc::conv_depthwise_backward_data(g, gycl, wc, gx);
    return gx;
  }
#if HALO_ENABLE_ONEDNN
  if (!p.transposed)
    kc::conv_onednn_backward_data(st.pass[1], g, gycl, wc, gx, st.blocked[1]);
  else
    kc::conv_onednn_forward(st.pass[1], g, gycl, wc, Tensor(), ConvEpilogue{}, gx, st.blocked[0]);
  return gx;
#else
  throw Error(str(plan.who(), ": oneDNN convolution requested in a build without it"));
#endif
}


void backward_weights(ConvPlan& plan, const Tensor& x, const Tensor& grad_y, const Tensor& grad_w,
                           const Tensor& grad_bias, bool accumulate, const Tensor& act_output) {
  check_tensor(plan, x, plan.input_shape(), "input");
  check_tensor(plan, grad_y, plan.output_shape(), "output gradient");
  check_tensor(plan, grad_w, plan.weight_shape(), "weight gradient", true);
  HALO_CHECK_SHAPE(grad_w.is_contiguous(), plan.who(), ": the weight gradient must be contiguous, got ",
                   grad_w.str());
  if (grad_bias.defined()) {
    check_tensor(plan, grad_bias, Shape{plan.output_shape()[1]}, "bias gradient", true);
    HALO_CHECK_SHAPE(grad_bias.is_contiguous(), plan.who(), ": the bias gradient must be contiguous");
  }
  CpuConvState& st = detail::conv_state<CpuConvState>(plan);
  const kc::ConvGeometry& g = st.geometry;
  const ConvParams& p = plan.params();
  // The fast kernels overwrite; when accumulating they write into temporaries that are
  // added afterwards. Their bias gradient comes out of the same sweep over grad_y (a second
  // sweep would cost as much as the weights at the first layer's 1 GB gradient).
  Tensor gw = accumulate ? Tensor::empty(grad_w.shape(), grad_w.dtype(), grad_w.device()) : grad_w;
  const bool fused_bias = grad_bias.defined() && is_fast(plan) && !p.transposed;
  Tensor gb;
  if (fused_bias) gb = accumulate ? Tensor::empty(grad_bias.shape(), grad_bias.dtype(), grad_bias.device()) : grad_bias;
  if (!is_fast(plan)) {
    if (!p.transposed)
      kc::conv_ref_backward_weights(g, x.contiguous(), grad_y.contiguous(), gw);
    else
      kc::conv_ref_backward_weights(g, grad_y.contiguous(), x.contiguous(), gw);
  } else if (plan.backend() == ConvBackend::first_layer) {
    kc::conv_first_layer_backward_weights(g, channels_last(x), channels_last(grad_y), gw, gb, act_output,
                                          plan.epilogue());
  } else if (plan.backend() == ConvBackend::depthwise) {
    kc::conv_depthwise_backward_weights(g, channels_last(x), channels_last(grad_y), gw, gb);
  } else {
#if HALO_ENABLE_ONEDNN
    if (!p.transposed)
      kc::conv_onednn_backward_weights(st.pass[2], g, channels_last(x), channels_last(grad_y), gw, gb,
                                       st.blocked[2]);
    else if (plan.dtype() == DType::f32 && kc::subpixel_supported(g))
      kc::conv_subpixel_transposed_backward_weights(st.pass[2], g, channels_last(x), channels_last(grad_y), gw);
    else
      kc::conv_onednn_backward_weights(st.pass[2], g, channels_last(grad_y), channels_last(x), gw, Tensor(),
                                       st.blocked[2]);
#endif
  }
  // The gradients have the parameters' type (f32 under bf16 activations).
  HALO_DISPATCH_FLOAT(grad_w.dtype(), plan.who(), [&] {
    if (accumulate) add_into<T>(grad_w, gw);
    if (fused_bias && accumulate) add_into<T>(grad_bias, gb);
    // (bf16 output gradients are summed as they are, into the f32 bias gradient)
    if (grad_bias.defined() && !fused_bias) {
      if (grad_y.dtype() == DType::bf16)
        bias_grad<T, bf16>(grad_y, grad_bias, accumulate);
      else
        bias_grad<T>(grad_y, grad_bias, accumulate);
    }
  });
}

bool fuses_activation_backward(const ConvPlan& plan) { return plan.backend() == ConvBackend::first_layer; }

Tensor epilogue_backward(const Tensor& g, const Tensor& y, const ConvEpilogue& e, const Tensor& into) {
  HALO_CHECK_SHAPE(y.device().is_cpu() && g.device().is_cpu(), "activation_backward: ", y.str(), " is not on the CPU");
  Tensor out = into.defined() ? into : Tensor::empty_strided(y.shape(), y.strides(), y.dtype(), y.device());
  if (y.dtype() == DType::bf16) {
    activation_grad_bf16(g, y, out, e);
    return out;
  }
  HALO_DISPATCH_FLOAT(y.dtype(), "activation_backward", [&] { activation_grad<T>(g, y, out, e); });
  return out;
}

}  // namespace
}  // namespace halo::ops::cpu_kernels

namespace halo::ops {

bool first_layer_kernel_available() {
  kernels::cpu::ConvGeometry g;
  g.Cin = 4;
  g.Cout = 32;
  g.in[0] = g.in[1] = g.in[2] = g.out[0] = g.out[1] = g.out[2] = 8;
  g.k[0] = g.k[1] = g.k[2] = 3;
  g.pad[0] = g.pad[1] = g.pad[2] = 1;
  return kernels::cpu::first_layer_supported(g);
}

}  // namespace halo::ops

namespace halo::kernels::cpu {

void register_conv(ops::OpTable& t) {
  namespace k = ops::cpu_kernels;
  static const ops::ConvKernels table = {k::prepare,  k::forward, k::backward_data, k::backward_weights,
                                         k::fuses_activation_backward, k::epilogue_backward};
  t.conv = &table;
}

}  // namespace halo::kernels::cpu

namespace halo::ops {
bool cpu_bf16_supported() { return cpu_kernels::bf16_supported(); }
}  // namespace halo::ops
