// Pooling: shapes and argument checks, then the kernels of the input's device (op_table.hpp).
#include "halo/ops/pool.hpp"

#include "op_table.hpp"
#include "plan_state.hpp"

namespace halo::ops {

PoolPlan::PoolPlan() : impl(std::make_unique<Impl>()) {}
PoolPlan::~PoolPlan() = default;

namespace {
std::string dims_str(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}
}  // namespace

std::string PoolConfig::str() const {
  return halo::str(name(kind), " ", dims_str(kernel), " stride ", dims_str(stride), " pad ",
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
  return pool_kernels(device_of(x), who).forward(x, cfg, plan, who);
}

Tensor pool_backward(const Tensor& dy, const Tensor& x, const PoolConfig& cfg, PoolPlan* plan, const std::string& who) {
  return pool_kernels(device_of(x), who).backward(dy, x, cfg, plan, who);
}

Tensor global_avg_pool_forward(const Tensor& x, bool keep_dims, const std::string& who) {
  return pool_kernels(device_of(x), who).global_avg_forward(x, keep_dims, who);
}

Tensor global_avg_pool_backward(const Tensor& dy, const Shape& input_shape, MemoryFormat format, const std::string& who) {
  HALO_CHECK_SHAPE(dy.defined(), who, ": output gradient is undefined");
  HALO_CHECK_SHAPE(input_shape.size() >= 3, who, ": input shape ", to_string(input_shape),
                   " should be (N, C, spatial...)");
  HALO_CHECK_SHAPE(dy.numel() == input_shape[0] * input_shape[1] && dy.size(0) == input_shape[0], who,
                   ": output gradient ", dy.str(), " does not fit input ", to_string(input_shape));
  return pool_kernels(dy.device(), who).global_avg_backward(dy, input_shape, format, who);
}

}  // namespace halo::ops
