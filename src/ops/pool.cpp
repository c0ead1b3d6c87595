// Pooling: argument checks and dispatch. f32 channels-last CPU tensors go to oneDNN when
// built with it; everything else runs the reference kernels.
#include "halo/ops/pool.hpp"

#include "cpu/pool.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/ops.hpp"
#include "cuda/pool_dropout.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::ops {

struct PoolPlan::Impl {
  std::shared_ptr<kernels::cpu::OnednnPoolState> onednn;
};

PoolPlan::PoolPlan() : impl(std::make_unique<Impl>()) {}
PoolPlan::~PoolPlan() = default;

namespace {
std::string dims_str(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}

void check_cpu_float(const Tensor& t, const std::string& who, const char* what) {
  HALO_CHECK_SHAPE(t.defined(), who, ": ", what, " is undefined");
  HALO_CHECK_SHAPE(t.device().is_cpu(), who, ": ", what, " ", t.str(),
                   " is not on the CPU; only CPU pooling kernels are built");
  HALO_CHECK_SHAPE(t.dtype() == DType::f32 || t.dtype() == DType::f64, who, ": ", what, " ", t.str(),
                   " must be f32 or f64");
}
#if HALO_ENABLE_CUDA
// Own kernels over explicit strides (any layout; 2-D pooling as depth 1): a pooling pass
// moves bytes, and a strided gather needs no workspace or index buffer between the passes.
cuda::raw::PoolDesc pool_desc(const Tensor& x, const Tensor& y, const PoolConfig& cfg) {
  cuda::raw::PoolDesc d;
  const int sd = cfg.spatial_dims(), off = 3 - sd;
  d.N = x.size(0);
  d.C = x.size(1);
  d.xs[0] = x.strides()[0];
  d.xs[1] = x.strides()[1];
  d.ys[0] = y.strides()[0];
  d.ys[1] = y.strides()[1];
  for (int i = 0; i < sd; ++i) {
    const size_t j = size_t(i);
    d.in[off + i] = x.size(2 + i);
    d.out[off + i] = y.size(2 + i);
    d.k[off + i] = cfg.kernel[j];
    d.s[off + i] = cfg.stride[j];
    d.p[off + i] = cfg.padding[j];
    d.xs[2 + off + i] = x.strides()[2 + j];
    d.ys[2 + off + i] = y.strides()[2 + j];
  }
  d.max = cfg.kind == PoolKind::max;
  d.count_include_pad = cfg.count_include_pad;
  return d;
}

Tensor gpu_pool_forward(const Tensor& x_in, const PoolConfig& cfg, const Shape& ys) {
  const Tensor x = x_in.is_dense() ? x_in : x_in.contiguous();
  const bool bf = cuda::is_bf16(x, "pool");
  Tensor y = Tensor::empty(ys, x.dtype(), x.device(), x.memory_format());
  cuda::DeviceGuard g(x.device().index);
  cuda::raw::pool_forward(x.raw_data(), y.raw_data(), bf, pool_desc(x, y, cfg), cuda::stream_of(x));
  return y;
}

Tensor gpu_pool_backward(const Tensor& dy, const Tensor& x_in, const PoolConfig& cfg, const std::string& who) {
  const Tensor x = x_in.is_dense() ? x_in : x_in.contiguous();
  HALO_CHECK_SHAPE(dy.device() == x.device() && dy.dtype() == x.dtype(), who, ": output gradient ", dy.str(),
                   " and input ", x.str(), " differ in device or dtype");
  const bool bf = cuda::is_bf16(x, "pool");
  Tensor dx = Tensor::empty_strided(x.shape(), x.strides(), x.dtype(), x.device());
  cuda::DeviceGuard g(x.device().index);
  // The descriptor's output strides are those of dy (dy may be laid out unlike the forward output).
  cuda::raw::pool_backward(dy.raw_data(), x.raw_data(), dx.raw_data(), bf, pool_desc(x, dy, cfg),
                           cuda::stream_of(x));
  return dx;
}

// Global average pooling of a dense (N, C, spatial...) tensor, in either layout.
cuda::raw::GlobalPoolDesc global_pool_desc(const Shape& x, bool channels_last) {
  cuda::raw::GlobalPoolDesc d;
  d.N = x[0];
  d.C = x[1];
  for (size_t i = 2; i < x.size(); ++i) d.S *= x[i];
  d.channels_last = channels_last;
  return d;
}

Tensor gpu_global_avg_pool_forward(const Tensor& x_in, bool keep_dims, const std::string& who) {
  HALO_CHECK_SHAPE(x_in.dim() >= 3, who, ": input ", x_in.str(), " should be (N, C, spatial...)");
  const bool cl = x_in.is_channels_last() && !x_in.is_contiguous();
  const Tensor x = cl || x_in.is_contiguous() ? x_in : x_in.contiguous();
  const bool bf = cuda::is_bf16(x, who.c_str());
  Shape ys = {x.size(0), x.size(1)};
  if (keep_dims) ys.resize(x.shape().size(), 1);
  Tensor y = Tensor::empty(ys, x.dtype(), x.device());
  cuda::DeviceGuard g(x.device().index);
  cuda::raw::global_avg_pool_forward(x.raw_data(), y.raw_data(), bf, global_pool_desc(x.shape(), cl),
                                     cuda::stream_of(x));
  return y;
}

Tensor gpu_global_avg_pool_backward(const Tensor& dy_in, const Shape& input_shape, MemoryFormat format,
                                    const std::string& who) {
  const Tensor dy = dy_in.contiguous();
  const bool bf = cuda::is_bf16(dy, who.c_str());
  Tensor dx = Tensor::empty(input_shape, dy.dtype(), dy.device(), format);
  const bool cl = dx.is_channels_last() && !dx.is_contiguous();
  cuda::DeviceGuard g(dy.device().index);
  cuda::raw::global_avg_pool_backward(dy.raw_data(), dx.raw_data(), bf, global_pool_desc(input_shape, cl),
                                      cuda::stream_of(dy));
  return dx;
}
#endif

}  // namespace

std::string PoolConfig::str() const {
  return halo::str(kind == PoolKind::max ? "max " : "avg ", dims_str(kernel), " stride ", dims_str(stride), " pad ",
                   dims_str(padding), kind == PoolKind::avg && !count_include_pad ? " (pad not counted)" : "");
}

Shape pool_output_shape(const Shape& in, const PoolConfig& cfg, const std::string& who) {
  const int sd = cfg.spatial_dims();
  HALO_CHECK_SHAPE(sd == 2 || sd == 3, who, ": pooling over ", sd, " spatial dimensions; 2 or 3 are supported");
  HALO_CHECK_SHAPE(cfg.stride.size() == size_t(sd) && cfg.padding.size() == size_t(sd), who, ": kernel, stride and ",
                   "padding need one entry per spatial dimension (", cfg.str(), ")");
  HALO_CHECK_SHAPE(in.size() == size_t(sd + 2), who, ": input ", to_string(in), " should be (N, C, ",
                   sd == 2 ? "H, W)" : "D, H, W)", " for ", sd, "D pooling");
  Shape out = {in[0], in[1]};
  for (int d = 0; d < sd; ++d) {
    const size_t j = size_t(d);
    const int64_t k = cfg.kernel[j], s = cfg.stride[j], p = cfg.padding[j];
    HALO_CHECK_SHAPE(k >= 1 && s >= 1 && p >= 0, who, ": kernel and stride must be positive and padding ",
                     "non-negative (", cfg.str(), ")");
    HALO_CHECK_SHAPE(2 * p <= k, who, ": padding may be at most half the kernel (", cfg.str(), ")");
    const int64_t span = in[2 + j] + 2 * p - k;
    HALO_CHECK_SHAPE(span >= 0, who, ": input ", to_string(in), " is smaller than the window (", cfg.str(), ")");
    out.push_back(span / s + 1);
  }
  return out;
}

Tensor pool_forward(const Tensor& x, const PoolConfig& cfg, PoolPlan* plan, const std::string& who) {
#if HALO_ENABLE_CUDA
  if (x.defined() && x.device().is_cuda()) return gpu_pool_forward(x, cfg, pool_output_shape(x.shape(), cfg, who));
#endif
  check_cpu_float(x, who, "input");
  const Shape ys = pool_output_shape(x.shape(), cfg, who);
#if HALO_ENABLE_ONEDNN
  if (kernels::cpu::pool_onednn_supports(x)) {
    std::shared_ptr<kernels::cpu::OnednnPoolState> scratch;
    auto& state = plan ? plan->impl->onednn : scratch;
    return kernels::cpu::pool_forward_onednn(x, cfg, state);
  }
#endif
  (void)plan;
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(ys, x.dtype());
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] { kernels::cpu::pool_forward_ref<T>(xc, y, cfg); });
  return y.to_memory_format(x.memory_format());
}

Tensor pool_backward(const Tensor& dy, const Tensor& x, const PoolConfig& cfg, PoolPlan* plan, const std::string& who) {
#if HALO_ENABLE_CUDA
  if (x.defined() && x.device().is_cuda()) {
    HALO_CHECK_SHAPE(dy.defined() && dy.shape() == pool_output_shape(x.shape(), cfg, who), who, ": output gradient ",
                     dy.defined() ? dy.str() : "undefined", " does not match the output of input ", x.str());
    return gpu_pool_backward(dy, x, cfg, who);
  }
#endif
  check_cpu_float(x, who, "input");
  check_cpu_float(dy, who, "output gradient");
  const Shape ys = pool_output_shape(x.shape(), cfg, who);
  HALO_CHECK_SHAPE(dy.shape() == ys && dy.dtype() == x.dtype(), who, ": output gradient ", dy.str(),
                   " does not match the output ", to_string(ys), " of input ", x.str());
#if HALO_ENABLE_ONEDNN
  if (kernels::cpu::pool_onednn_supports(x)) {
    std::shared_ptr<kernels::cpu::OnednnPoolState> scratch;
    auto& state = plan ? plan->impl->onednn : scratch;
    return kernels::cpu::pool_backward_onednn(dy, x, cfg, state);
  }
#endif
  (void)plan;
  const Tensor xc = x.contiguous();
  const Tensor dyc = dy.contiguous();
  Tensor dx = Tensor::zeros(x.shape(), x.dtype());
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] { kernels::cpu::pool_backward_ref<T>(dyc, xc, dx, cfg); });
  return dx.to_memory_format(x.memory_format());
}

Tensor global_avg_pool_forward(const Tensor& x, bool keep_dims, const std::string& who) {
#if HALO_ENABLE_CUDA
  if (x.defined() && x.device().is_cuda()) return gpu_global_avg_pool_forward(x, keep_dims, who);
#endif
  check_cpu_float(x, who, "input");
  HALO_CHECK_SHAPE(x.dim() >= 3, who, ": input ", x.str(), " should be (N, C, spatial...)");
  const bool cl = x.is_channels_last() && !x.is_contiguous();
  const Tensor xs = cl ? x : x.contiguous();
  Shape ys = {x.size(0), x.size(1)};
  if (keep_dims) ys.resize(x.shape().size(), 1);
  Tensor y = Tensor::empty(ys, x.dtype());
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] { kernels::cpu::global_avg_pool_forward<T>(xs, y.data<T>()); });
  return y;
}

Tensor global_avg_pool_backward(const Tensor& dy, const Shape& input_shape, MemoryFormat format, const std::string& who) {
  HALO_CHECK_SHAPE(dy.defined(), who, ": output gradient is undefined");
  HALO_CHECK_SHAPE(input_shape.size() >= 3, who, ": input shape ", to_string(input_shape),
                   " should be (N, C, spatial...)");
  HALO_CHECK_SHAPE(dy.numel() == input_shape[0] * input_shape[1] && dy.size(0) == input_shape[0], who,
                   ": output gradient ", dy.str(), " does not fit input ", to_string(input_shape));
#if HALO_ENABLE_CUDA
  if (dy.device().is_cuda()) return gpu_global_avg_pool_backward(dy, input_shape, format, who);
#endif
  check_cpu_float(dy, who, "output gradient");
  const Tensor dyc = dy.contiguous();
  Tensor dx = Tensor::empty(input_shape, dy.dtype(), Device::cpu(), format);
  HALO_DISPATCH_FLOAT(dy.dtype(), who, [&] { kernels::cpu::global_avg_pool_backward<T>(dyc.data<T>(), dx); });
  return dx;
}

}  // namespace halo::ops
