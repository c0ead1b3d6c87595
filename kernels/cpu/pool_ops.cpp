// The cpu pooling table: f32 and bf16 channels-last tensors go to oneDNN when built with it (its
// primitives and max-pooling workspace kept in the PoolPlan); everything else runs the
// reference kernels on a contiguous copy.
#include "cpu/pool.hpp"
#include "halo/config.hpp"
#include "cpu/register.hpp"
#include "plan_state.hpp"

namespace halo::kernels::cpu {
namespace {

using namespace halo::ops;

void check_cpu_float(const Tensor& t, const std::string& who, const char* what, bool bf16_ok = false) {
  HALO_CHECK_SHAPE(t.defined(), who, ": ", what, " is undefined");
  HALO_CHECK_SHAPE(t.device().is_cpu(), who, ": ", what, " ", t.str(), " is not on the CPU");
  HALO_CHECK_SHAPE(t.dtype() == DType::f32 || t.dtype() == DType::f64 || (bf16_ok && t.dtype() == DType::bf16), who,
                   ": ", what, " ", t.str(), bf16_ok ? " must be f32, f64, or bf16 in channels-last (oneDNN)"
                                                      : " must be f32 or f64");
}

/// bf16 pooling runs on oneDNN only, which takes channels-last tensors.
void check_bf16_pool(const Tensor& x, const PoolConfig& cfg, const std::string& who) {
  if (x.dtype() != DType::bf16) return;
#if HALO_ENABLE_ONEDNN
  HALO_CHECK_SHAPE(pool_onednn_supports(x, cfg), who, ": bf16 pooling on the CPU runs on oneDNN, which needs a "
                   "channels-last input; got ", x.str());
#else
  (void)cfg;
  throw ShapeError(str(who, ": bf16 pooling on the CPU needs a build with oneDNN; train in f32"));
#endif
}

#if HALO_ENABLE_ONEDNN
/// The oneDNN state of a plan (or of this call alone without a plan), handed back afterwards.
struct OnednnSlot {
  PoolPlan* plan;
  std::shared_ptr<OnednnPoolState> state;
  explicit OnednnSlot(PoolPlan* p)
      : plan(p), state(p ? std::static_pointer_cast<OnednnPoolState>(p->impl->backend_state) : nullptr) {}
  ~OnednnSlot() {
    if (plan) plan->impl->backend_state = state;
  }
};
#endif

Tensor pool_forward_op(const Tensor& x, const PoolConfig& cfg, PoolPlan* plan, const std::string& who) {
  check_cpu_float(x, who, "input", true);
  check_bf16_pool(x, cfg, who);
  const Shape ys = pool_output_shape(x.shape(), cfg, who);
#if HALO_ENABLE_ONEDNN
  if (pool_onednn_supports(x, cfg)) {
    OnednnSlot slot(plan);
    return pool_forward_onednn(x, cfg, slot.state);
  }
#endif
  (void)plan;
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(ys, x.dtype());
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] { pool_forward_ref<T>(xc, y, cfg); });
  return y.to_memory_format(x.memory_format());
}

Tensor pool_backward_op(const Tensor& dy, const Tensor& x, const PoolConfig& cfg, PoolPlan* plan,
                        const std::string& who) {
  check_cpu_float(x, who, "input", true);
  check_cpu_float(dy, who, "output gradient", true);
  check_bf16_pool(x, cfg, who);
  const Shape ys = pool_output_shape(x.shape(), cfg, who);
  HALO_CHECK_SHAPE(dy.shape() == ys && dy.dtype() == x.dtype(), who, ": output gradient ", dy.str(),
                   " does not match the output ", to_string(ys), " of input ", x.str());
#if HALO_ENABLE_ONEDNN
  if (pool_onednn_supports(x, cfg)) {
    OnednnSlot slot(plan);
    return pool_backward_onednn(dy, x, cfg, slot.state);
  }
#endif
  (void)plan;
  const Tensor xc = x.contiguous();
  const Tensor dyc = dy.contiguous();
  Tensor dx = Tensor::zeros(x.shape(), x.dtype());
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] { pool_backward_ref<T>(dyc, xc, dx, cfg); });
  return dx.to_memory_format(x.memory_format());
}

Tensor global_avg_forward_op(const Tensor& x, bool keep_dims, const std::string& who) {
  // bf16: averaged in f32 (one pass over the input; the output is one value per channel).
  if (x.dtype() == DType::bf16) return global_avg_forward_op(x.to(DType::f32), keep_dims, who).to(DType::bf16);
  check_cpu_float(x, who, "input");
  HALO_CHECK_SHAPE(x.dim() >= 3, who, ": input ", x.str(), " should be (N, C, spatial...)");
  const bool cl = x.is_channels_last() && !x.is_contiguous();
  const Tensor xs = cl ? x : x.contiguous();
  Shape ys = {x.size(0), x.size(1)};
  if (keep_dims) ys.resize(x.shape().size(), 1);
  Tensor y = Tensor::empty(ys, x.dtype());
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] { global_avg_pool_forward<T>(xs, y.data<T>()); });
  return y;
}

Tensor global_avg_backward_op(const Tensor& dy, const Shape& input_shape, MemoryFormat format,
                              const std::string& who) {
  if (dy.dtype() == DType::bf16)
    return global_avg_backward_op(dy.to(DType::f32), input_shape, format, who).to(DType::bf16);
  check_cpu_float(dy, who, "output gradient");
  const Tensor dyc = dy.contiguous();
  Tensor dx = Tensor::empty(input_shape, dy.dtype(), Device::cpu(), format);
  HALO_DISPATCH_FLOAT(dy.dtype(), who, [&] { global_avg_pool_backward<T>(dyc.data<T>(), dx); });
  return dx;
}

const PoolKernels kTable = {pool_forward_op, pool_backward_op, global_avg_forward_op, global_avg_backward_op};

}  // namespace

void register_pool(OpTable& t) { t.pool = &kTable; }

}  // namespace halo::kernels::cpu
