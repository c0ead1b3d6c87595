// Pooling: argument checks and dispatch. f32 channels-last CPU tensors go to oneDNN when
// built with it; everything else runs the reference kernels.
#include "halo/ops/pool.hpp"

#include "cpu/pool.hpp"
#include "halo/config.hpp"

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
  check_cpu_float(dy, who, "output gradient");
  HALO_CHECK_SHAPE(input_shape.size() >= 3, who, ": input shape ", to_string(input_shape),
                   " should be (N, C, spatial...)");
  HALO_CHECK_SHAPE(dy.numel() == input_shape[0] * input_shape[1] && dy.size(0) == input_shape[0], who,
                   ": output gradient ", dy.str(), " does not fit input ", to_string(input_shape));
  const Tensor dyc = dy.contiguous();
  Tensor dx = Tensor::empty(input_shape, dy.dtype(), Device::cpu(), format);
  HALO_DISPATCH_FLOAT(dy.dtype(), who, [&] { kernels::cpu::global_avg_pool_backward<T>(dyc.data<T>(), dx); });
  return dx;
}

}  // namespace halo::ops
