// The cpu upsampling table: the reference kernels (upsample_ref.cpp) on contiguous copies,
// the output returned in the input's memory format.
#include "cpu/register.hpp"
#include "cpu/upsample.hpp"

namespace halo::kernels::cpu {
namespace {

using namespace halo::ops;

// bf16 (mixed precision): interpolated in f32 on the converted values, the result rounded once.
Tensor forward(const Tensor& x, const UpsampleConfig& cfg, const std::string& who) {
  HALO_CHECK_SHAPE(x.defined() && x.device().is_cpu(), who, ": input must be a CPU tensor",
                   x.defined() ? " (got " + x.str() + ")" : std::string());
  if (x.dtype() == DType::bf16) return forward(x.to(DType::f32), cfg, who).to(DType::bf16);
  const Shape ys = upsample_output_shape(x.shape(), cfg, who);
  const Tensor xc = x.contiguous();
  Tensor y = Tensor::empty(ys, x.dtype());
  HALO_DISPATCH_FLOAT(x.dtype(), who, [&] {
    if (cfg.mode == UpsampleMode::nearest)
      kernels::cpu::upsample_nearest_forward_ref<T>(xc, y);
    else
      kernels::cpu::upsample_bilinear_forward_ref<T>(xc, y, cfg.align_corners);
  });
  return y.to_memory_format(x.memory_format());
}

Tensor backward(const Tensor& dy, const Shape& input_shape, const UpsampleConfig& cfg, MemoryFormat format,
                         const std::string& who) {
  const Shape ys = upsample_output_shape(input_shape, cfg, who);
  HALO_CHECK_SHAPE(dy.defined() && dy.device().is_cpu() && dy.shape() == ys, who, ": output gradient ",
                   dy.defined() ? dy.str() : std::string("(undefined)"), " should be a CPU tensor of shape ",
                   to_string(ys), " for input ", to_string(input_shape));
  if (dy.dtype() == DType::bf16) return backward(dy.to(DType::f32), input_shape, cfg, format, who).to(DType::bf16);
  const Tensor gc = dy.contiguous();
  Tensor dx = Tensor::zeros(input_shape, dy.dtype());
  HALO_DISPATCH_FLOAT(dy.dtype(), who, [&] {
    if (cfg.mode == UpsampleMode::nearest)
      kernels::cpu::upsample_nearest_backward_ref<T>(gc, dx);
    else
      kernels::cpu::upsample_bilinear_backward_ref<T>(gc, dx, cfg.align_corners);
  });
  return dx.to_memory_format(format);
}

const UpsampleKernels kTable = {forward, backward};

}  // namespace

void register_upsample(ops::OpTable& t) { t.upsample = &kTable; }

}  // namespace halo::kernels::cpu
