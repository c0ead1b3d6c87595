// Convolution dispatch: argument checks (errors name the caller and the shapes), the
// choice of kernel per plan, and the mapping of transposed convolutions onto the direct
// kernels. The only place with backend #ifs.
#include "halo/ops/conv.hpp"

#include <algorithm>
#include <cmath>

#include "cpu/conv.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/conv.hpp"
#include "cuda/elementwise.hpp"
#include "cuda/ops.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::ops {
namespace kc = halo::kernels::cpu;


const char* name(ConvBackend b) {
  switch (b) {
    case ConvBackend::automatic: return "automatic";
    case ConvBackend::reference: return "reference";
    case ConvBackend::onednn: return "onednn";
    case ConvBackend::first_layer: return "first_layer";
    case ConvBackend::depthwise: return "depthwise";
  }
  return "?";
}

bool first_layer_kernel_available() {
  kc::ConvGeometry g;
  g.Cin = 4;
  g.Cout = 32;
  g.in[0] = g.in[1] = g.in[2] = g.out[0] = g.out[1] = g.out[2] = 8;
  g.k[0] = g.k[1] = g.k[2] = 3;
  g.pad[0] = g.pad[1] = g.pad[2] = 1;
  return kc::first_layer_supported(g);
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

// ---- plan -------------------------------------------------------------------

namespace {

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

OnednnLayout g_onednn_layout = OnednnLayout::automatic;

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

}  // namespace

ConvPlan::ConvPlan(const Shape& input, const Shape& weight, const ConvParams& p, DType dtype, Device dev,
                   ConvEpilogue epilogue, bool has_bias, ConvBackend backend, std::string who)
    : input_(input), weight_(weight), params_(p), epilogue_(epilogue), has_bias_(has_bias), dtype_(dtype),
      device_(dev), who_(std::move(who)) {
  output_ = conv_output_shape(input, weight, p, who_);
  HALO_CHECK_T(ConfigError,
               epilogue.activation == Activation::none || epilogue.activation == Activation::relu ||
                   epilogue.activation == Activation::leaky_relu,
               who_, ": a convolution fuses only none, relu or leaky_relu, not ", name(epilogue.activation),
               " (add the activation as its own layer)");
  HALO_CHECK_T(ConfigError, epilogue.activation != Activation::leaky_relu || epilogue.slope > 0, who_,
               ": leaky_relu needs a slope > 0 (its backward reads the sign of the output), got ", epilogue.slope);
#if HALO_ENABLE_CUDA
  if (dev.is_cuda()) {
    // cuDNN, created lazily in state[0] by the first pass (kernels/cuda/conv_cudnn.cpp).
    HALO_CHECK_SHAPE(dtype == DType::f32 || dtype == DType::bf16, who_, ": a GPU convolution needs f32 or bf16 ",
                     "activations, got ", name(dtype));
    if (p.transposed)
      for (int i = 0; i < p.spatial_dims; ++i)
        // The transposed pass runs as the backward-data of the direct convolution whose input
        // has this plan's output shape; that convolution maps back onto the input only when
        // the extra output rows are fewer than a stride.
        HALO_CHECK_T(ConfigError, p.output_padding[size_t(i)] < p.stride[size_t(i)], who_,
                     ": a GPU transposed convolution needs output_padding < stride on every axis (", p.str(),
                     "); use a larger stride or padding, or run this layer on the cpu");
    backend_ = ConvBackend::automatic;
    return;
  }
#endif
  HALO_CHECK_T(Error, dev.is_cpu(), who_, ": no convolution kernel for device ", dev.str(), " in this build");
  HALO_CHECK_SHAPE(dtype == DType::f32 || dtype == DType::f64, who_, ": convolution needs f32 or f64, got ",
                   name(dtype));
  const kc::ConvGeometry g = geometry(*this);
  const bool fast_ok = dtype == DType::f32 && onednn_available();
  switch (backend) {
    case ConvBackend::automatic:
      if (dtype == DType::f32 && !p.transposed && kc::first_layer_supported(g))
        backend_ = ConvBackend::first_layer;
      else if (dtype == DType::f32 && !p.transposed && kc::depthwise_supported(g) && (g.dil[1] > 1 || g.dil[2] > 1))
        backend_ = ConvBackend::depthwise;
      else
        backend_ = fast_ok ? ConvBackend::onednn : ConvBackend::reference;
      break;
    case ConvBackend::reference: backend_ = backend; break;
    case ConvBackend::onednn:
      HALO_CHECK_T(Error, fast_ok, who_, ": the oneDNN convolution needs f32 and a build with HALO_ENABLE_ONEDNN");
      backend_ = backend;
      break;
    case ConvBackend::depthwise:
      HALO_CHECK_T(Error, dtype == DType::f32 && !p.transposed && kc::depthwise_supported(g), who_,
                   ": the depthwise kernel needs f32, a 2D convolution (not transposed) and groups equal to the "
                   "input and output channels; got input ",
                   to_string(input), " weight ", to_string(weight), " (", p.str(), ")");
      backend_ = backend;
      break;
    case ConvBackend::first_layer:
      HALO_CHECK_T(Error, dtype == DType::f32 && !p.transposed && kc::first_layer_supported(g), who_,
                   ": the first-layer kernel needs f32, 3x3x3 kernels, stride 1, padding 1, no groups, <= 4 "
                   "input and 32 output channels and AVX-512; got input ",
                   to_string(input), " weight ", to_string(weight), " (", p.str(), ")");
      backend_ = backend;
      break;
  }
  if (backend_ == ConvBackend::onednn)
    for (int k = 0; k < 3; ++k)
      blocked_[k] = g_onednn_layout == OnednnLayout::blocked ||
                    (g_onednn_layout == OnednnLayout::automatic && prefer_blocked(g, k));
}

void set_conv_onednn_layout(OnednnLayout layout) { g_onednn_layout = layout; }
OnednnLayout conv_onednn_layout() { return g_onednn_layout; }

// ---- helpers ------------------------------------------------------------------

namespace {

void check_tensor(const ConvPlan& plan, const Tensor& t, const Shape& expect, const char* what) {
  HALO_CHECK_SHAPE(t.defined(), plan.who(), ": ", what, " is undefined");
  HALO_CHECK_SHAPE(t.shape() == expect, plan.who(), ": ", what, " has shape ", to_string(t.shape()), ", expected ",
                   to_string(expect), " (input ", to_string(plan.input_shape()), ", weight ",
                   to_string(plan.weight_shape()), ", ", plan.params().str(), ")");
  HALO_CHECK_SHAPE(t.dtype() == plan.dtype(), plan.who(), ": ", what, " is ", name(t.dtype()), ", the plan is for ",
                   name(plan.dtype()));
  HALO_CHECK_SHAPE(t.device() == plan.device(), plan.who(), ": ", what, " is on ", t.device().str(),
                   ", the plan is for ", plan.device().str());
}

Tensor channels_last(const Tensor& t) {
  return t.is_channels_last() ? t : t.to_memory_format(MemoryFormat::channels_last);
}

bool is_fast(const ConvPlan& plan) { return plan.backend() != ConvBackend::reference; }

/// Adds the bias per channel and applies the activation in place, in either layout.
template <class T>
void epilogue_inplace(const Tensor& y, const Tensor& bias, const ConvEpilogue& e) {
  T* p = y.data<T>();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const T* b = bc.defined() ? bc.data<T>() : nullptr;
  const int64_t n = y.numel(), C = y.size(1);
  const bool cl = y.is_channels_last() && !y.is_contiguous();
  const int64_t inner = cl ? 1 : n / (y.size(0) * C);
  const T slope = T(e.slope);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T v = p[i];
    if (b) v += b[(i / inner) % C];
    if (e.activation == Activation::relu)
      v = v > T(0) ? v : T(0);
    else if (e.activation == Activation::leaky_relu)
      v = v > T(0) ? v : v * slope;
    p[i] = v;
  }
}

/// Per-channel sum of gy over batch and space, into gb (overwrite or add).
template <class T>
void bias_grad(const Tensor& gy, const Tensor& gb, bool accumulate) {
  const int64_t C = gy.size(1);
  std::vector<double> sum(size_t(C), 0.0);
  const bool cl = gy.is_channels_last() && !gy.is_contiguous();
  Tensor g = cl ? gy : gy.contiguous();
  const T* p = g.data<T>();
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
        const T* q = p + (o * C + c) * inner;
        double s = 0;
        for (int64_t i = 0; i < inner; ++i) s += double(q[i]);
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

}  // namespace

// ---- CUDA ---------------------------------------------------------------------

#if HALO_ENABLE_CUDA
namespace {

/// The cuDNN plan of an ops::ConvPlan, and the weight in the plan's dtype and channels-last
/// layout as forward made it (backward-data of the same step reuses it).
struct CudnnState final : detail::ConvPlanState {
  std::unique_ptr<cuda::ConvPlan> plan;
  MemoryFormat format = MemoryFormat::channels_last;
  Tensor weight;
};

CudnnState& cudnn_state(ConvPlan& plan, MemoryFormat format = MemoryFormat::channels_last) {
  auto* st = dynamic_cast<CudnnState*>(plan.state[0].get());
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
  for (int i = 0; i < plan.params().spatial_dims; ++i) {
    cp.stride.push_back(int(plan.params().stride[size_t(i)]));
    cp.padding.push_back(int(plan.params().padding[size_t(i)]));
    cp.dilation.push_back(int(plan.params().dilation[size_t(i)]));
  }
  cp.groups = int(plan.params().groups);
  cp.dtype = plan.dtype();
  cp.format = format;  // channels-last is the tensor cores' layout
  made->plan = std::make_unique<cuda::ConvPlan>(cp, plan.device().index);
  plan.state[0] = made;
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
  try {
    st->weight = in_format(w, plan.dtype(), st->format);
    y = Tensor::empty(plan.output_shape(), plan.dtype(), plan.device(), st->format);
    direct_forward(plan, *st, in_format(x, plan.dtype(), st->format), y);
  } catch (const Error&) {
    // cuDNN offers no channels-last algorithm for some f32 shapes (few input channels):
    // the layer then runs in the contiguous layout.
    if (st->format != MemoryFormat::channels_last) throw;
    plan.state[0].reset();
    st = &cudnn_state(plan, MemoryFormat::contiguous);
    st->weight = in_format(w, plan.dtype(), st->format);
    y = Tensor::empty(plan.output_shape(), plan.dtype(), plan.device(), st->format);
    direct_forward(plan, *st, in_format(x, plan.dtype(), st->format), y);
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
  const Tensor wc = st.weight.defined() ? st.weight : in_format(w, plan.dtype(), st.format);
  Tensor dx = Tensor::empty(plan.input_shape(), plan.dtype(), plan.device(), st.format);
  if (plan.params().transposed)
    st.plan->forward(in_format(gy, plan.dtype(), st.format), wc, dx);
  else
    st.plan->backward_data(in_format(gy, plan.dtype(), st.format), wc, dx);
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
  Tensor dw = Tensor::empty(plan.weight_shape(), plan.dtype(), plan.device(), st.format);
  if (plan.params().transposed)
    st.plan->backward_filter(gy, in_format(x, plan.dtype(), st.format), dw);
  else
    st.plan->backward_filter(in_format(x, plan.dtype(), st.format), gy, dw);
  Tensor gw = gw_in;
  HALO_CHECK_SHAPE(cuda::convert(gw, dw, accumulate), plan.who(), ": weight gradient ", gw.str(),
                   " must be f32 or bf16");
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

}  // namespace
#endif

// ---- passes -------------------------------------------------------------------

Tensor conv_forward(ConvPlan& plan, const Tensor& x, const Tensor& w, const Tensor& bias) {
  HALO_CHECK(plan.defined(), "conv_forward: the plan is empty");
#if HALO_ENABLE_CUDA
  if (plan.device().is_cuda()) return gpu_forward(plan, x, w, bias);
#endif
  check_tensor(plan, x, plan.input_shape(), "input");
  check_tensor(plan, w, plan.weight_shape(), "weight");
  if (plan.has_bias()) check_tensor(plan, bias, Shape{plan.output_shape()[1]}, "bias");
  HALO_CHECK_SHAPE(plan.has_bias() || !bias.defined(), plan.who(), ": a bias was given to a plan made without one");
  const kc::ConvGeometry g = geometry(plan);
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
  Tensor y = Tensor::empty(plan.output_shape(), DType::f32, plan.device(), MemoryFormat::channels_last);
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
    kc::conv_onednn_forward(plan.state[0], g, xcl, wc, b, plan.epilogue(), y, plan.blocked(0));
  } else {
    if (kc::subpixel_supported(g))
      kc::conv_subpixel_transposed_forward(plan.state[0], g, xcl, wc, y);
    else
      kc::conv_onednn_backward_data(plan.state[0], g, xcl, wc, y, plan.blocked(1));
    epilogue_inplace<float>(y, b, plan.epilogue());
  }
  return y;
#else
  throw Error(str(plan.who(), ": oneDNN convolution requested in a build without it"));
#endif
}

Tensor conv_backward_data(ConvPlan& plan, const Tensor& grad_y, const Tensor& w) {
  HALO_CHECK(plan.defined(), "conv_backward_data: the plan is empty");
#if HALO_ENABLE_CUDA
  if (plan.device().is_cuda()) return gpu_backward_data(plan, grad_y, w);
#endif
  check_tensor(plan, grad_y, plan.output_shape(), "output gradient");
  check_tensor(plan, w, plan.weight_shape(), "weight");
  const kc::ConvGeometry g = geometry(plan);
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
  Tensor gx = Tensor::empty(plan.input_shape(), DType::f32, plan.device(), MemoryFormat::channels_last);
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
    kc::conv_onednn_backward_data(plan.state[1], g, gycl, wc, gx, plan.blocked(1));
  else
    kc::conv_onednn_forward(plan.state[1], g, gycl, wc, Tensor(), ConvEpilogue{}, gx, plan.blocked(0));
  return gx;
#else
  throw Error(str(plan.who(), ": oneDNN convolution requested in a build without it"));
#endif
}

namespace {
void backward_weights_impl(ConvPlan& plan, const Tensor& x, const Tensor& grad_y, const Tensor& grad_w,
                           const Tensor& grad_bias, bool accumulate, const Tensor& act_output);
}  // namespace

void conv_backward_weights(ConvPlan& plan, const Tensor& x, const Tensor& grad_y, const Tensor& grad_w,
                           const Tensor& grad_bias, bool accumulate) {
  backward_weights_impl(plan, x, grad_y, grad_w, grad_bias, accumulate, Tensor());
}

void conv_backward_weights_through_activation(ConvPlan& plan, const Tensor& x, const Tensor& grad_act,
                                              const Tensor& y, const Tensor& grad_w, const Tensor& grad_bias,
                                              bool accumulate) {
  const bool fusable = plan.epilogue().activation != Activation::none && plan.device().is_cpu() &&
                       plan.backend() == ConvBackend::first_layer && y.defined() && y.is_channels_last() &&
                       grad_act.is_channels_last() && grad_act.shape() == plan.output_shape() &&
                       y.shape() == plan.output_shape();
  if (fusable) return backward_weights_impl(plan, x, grad_act, grad_w, grad_bias, accumulate, y);
  const Tensor g = y.defined() ? activation_backward(grad_act, y, plan.epilogue()) : grad_act;
  backward_weights_impl(plan, x, g, grad_w, grad_bias, accumulate, Tensor());
}

namespace {
void backward_weights_impl(ConvPlan& plan, const Tensor& x, const Tensor& grad_y, const Tensor& grad_w,
                           const Tensor& grad_bias, bool accumulate, const Tensor& act_output) {
  HALO_CHECK(plan.defined(), "conv_backward_weights: the plan is empty");
#if HALO_ENABLE_CUDA
  if (plan.device().is_cuda()) return gpu_backward_weights(plan, x, grad_y, grad_w, grad_bias, accumulate);
#endif
  check_tensor(plan, x, plan.input_shape(), "input");
  check_tensor(plan, grad_y, plan.output_shape(), "output gradient");
  check_tensor(plan, grad_w, plan.weight_shape(), "weight gradient");
  HALO_CHECK_SHAPE(grad_w.is_contiguous(), plan.who(), ": the weight gradient must be contiguous, got ",
                   grad_w.str());
  if (grad_bias.defined()) {
    check_tensor(plan, grad_bias, Shape{plan.output_shape()[1]}, "bias gradient");
    HALO_CHECK_SHAPE(grad_bias.is_contiguous(), plan.who(), ": the bias gradient must be contiguous");
  }
  const kc::ConvGeometry g = geometry(plan);
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
      kc::conv_onednn_backward_weights(plan.state[2], g, channels_last(x), channels_last(grad_y), gw, gb,
                                       plan.blocked(2));
    else if (kc::subpixel_supported(g))
      kc::conv_subpixel_transposed_backward_weights(plan.state[2], g, channels_last(x), channels_last(grad_y), gw);
    else
      kc::conv_onednn_backward_weights(plan.state[2], g, channels_last(grad_y), channels_last(x), gw, Tensor(),
                                       plan.blocked(2));
#endif
  }
  HALO_DISPATCH_FLOAT(plan.dtype(), plan.who(), [&] {
    if (accumulate) add_into<T>(grad_w, gw);
    if (fused_bias && accumulate) add_into<T>(grad_bias, gb);
    if (grad_bias.defined() && !fused_bias) bias_grad<T>(grad_y, grad_bias, accumulate);
  });
}
}  // namespace

Tensor activation_backward(const Tensor& grad_y, const Tensor& y, const ConvEpilogue& e) {
  HALO_CHECK_SHAPE(grad_y.shape() == y.shape() && grad_y.dtype() == y.dtype(), "activation_backward: gradient ",
                   grad_y.str(), " does not match output ", y.str());
  if (e.activation == Activation::none) return grad_y;
  HALO_CHECK_SHAPE(y.is_dense(), "activation_backward: output ", y.str(), " is not dense");
#if HALO_ENABLE_CUDA
  if (y.device().is_cuda()) {
    Tensor g = grad_y;
    if (g.strides() != y.strides()) {
      g = Tensor::empty_strided(y.shape(), y.strides(), y.dtype(), y.device());
      g.copy_(grad_y);
    }
    Tensor out = Tensor::empty_strided(y.shape(), y.strides(), y.dtype(), y.device());
    cuda::activation_backward(e.activation, y, y, g, out, float(e.slope));
    return out;
  }
#endif
  // Walk both as flat arrays in y's layout.
  Tensor g = grad_y.strides() == y.strides() ? grad_y : [&] {
    Tensor t = Tensor::empty_strided(y.shape(), y.strides(), y.dtype(), y.device());
    t.copy_(grad_y);
    return t;
  }();
  Tensor out = Tensor::empty_strided(y.shape(), y.strides(), y.dtype(), y.device());
  HALO_DISPATCH_FLOAT(y.dtype(), "activation_backward", [&] { activation_grad<T>(g, y, out, e); });
  return out;
}

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, const ConvParams& p, ConvEpilogue e) {
  ConvPlan plan(x.shape(), w.shape(), p, x.dtype(), x.device(), e, bias.defined());
  return conv_forward(plan, x, w, bias);
}

}  // namespace halo::ops
