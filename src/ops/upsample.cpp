// Upsampling: argument checks and dispatch to the reference kernels (contiguous copies in,
// output returned in the input's memory format).
#include "halo/ops/upsample.hpp"

#include "cpu/upsample.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/layer_ops.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::ops {
namespace {
std::string dims_str(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}
}  // namespace

#if HALO_ENABLE_CUDA
namespace {
// The kernels read and write through explicit (N, C, D, H, W) strides, so any layout works
// without reordered copies; 2-D tensors get a unit depth.
cuda::raw::UpsampleDesc gpu_desc(const Tensor& x_like, const Shape& xs, const Tensor& y_like, const Shape& ys,
                                 const UpsampleConfig& cfg) {
  cuda::raw::UpsampleDesc d;
  d.N = xs[0];
  d.C = xs[1];
  const size_t lift = 5 - xs.size();
  for (size_t k = 0; k < 5; ++k) {
    const bool lifted = k == 2 && lift == 1;
    const size_t src = k < 2 ? k : k - lift;
    d.xs[k] = lifted ? 0 : x_like.strides()[src];
    d.ys[k] = lifted ? 0 : y_like.strides()[src];
    if (k >= 2) {
      d.in[k - 2] = lifted ? 1 : xs[src];
      d.out[k - 2] = lifted ? 1 : ys[src];
    }
  }
  d.bilinear = cfg.mode == UpsampleMode::bilinear;
  d.align_corners = cfg.align_corners;
  return d;
}

Tensor gpu_upsample_forward(const Tensor& x, const UpsampleConfig& cfg, const std::string& who) {
  const Shape ys = upsample_output_shape(x.shape(), cfg, who);
  const bool bf16 = cuda::is_bf16(x, who.c_str());
  Tensor y = Tensor::empty(ys, x.dtype(), x.device(), x.memory_format());
  cuda::DeviceGuard guard(x.device().index);
  cuda::raw::upsample_forward(x.raw_data(), y.raw_data(), bf16, gpu_desc(x, x.shape(), y, ys, cfg),
                              cuda::stream_of(x));
  return y;
}

// Scatters into an f32 buffer (f32 atomics), cast to dy's dtype at the end.
Tensor gpu_upsample_backward(const Tensor& dy, const Shape& input_shape, const UpsampleConfig& cfg,
                             MemoryFormat format, const std::string& who) {
  const Shape ys = upsample_output_shape(input_shape, cfg, who);
  HALO_CHECK_SHAPE(dy.shape() == ys, who, ": output gradient ", dy.str(), " should have shape ", to_string(ys),
                   " for input ", to_string(input_shape));
  const bool bf16 = cuda::is_bf16(dy, who.c_str());
  Tensor dx = Tensor::zeros(input_shape, DType::f32, dy.device(), format);
  cuda::DeviceGuard guard(dy.device().index);
  cuda::raw::upsample_backward(dy.raw_data(), bf16, dx.data<float>(), gpu_desc(dx, input_shape, dy, ys, cfg),
                               cuda::stream_of(dy));
  return bf16 ? cuda::cast(dx, DType::bf16) : dx;
}
}  // namespace
#endif

std::string UpsampleConfig::str() const {
  const char* m = mode == UpsampleMode::nearest ? "nearest" : "bilinear";
  std::string s = size.empty() ? halo::str(m, " x", dims_str(scale)) : halo::str(m, " to ", dims_str(size));
  if (mode == UpsampleMode::bilinear && align_corners) s += " (align_corners)";
  return s;
}

Shape upsample_output_shape(const Shape& in, const UpsampleConfig& cfg, const std::string& who) {
  const size_t sd = in.size() >= 2 ? in.size() - 2 : 0;
  HALO_CHECK_SHAPE(sd == 2 || sd == 3, who, ": input ", to_string(in), " should be (N, C, H, W) or (N, C, D, H, W)");
  HALO_CHECK_SHAPE(cfg.mode == UpsampleMode::nearest || sd == 2, who, ": bilinear upsampling needs a 2D input (N, C, H, W), got ",
                   to_string(in));
  const std::vector<int64_t>& v = cfg.size.empty() ? cfg.scale : cfg.size;
  HALO_CHECK_SHAPE(v.size() == sd, who, ": ", cfg.str(), " needs one ", cfg.size.empty() ? "scale factor" : "size",
                   " per spatial dimension of input ", to_string(in));
  Shape out = {in[0], in[1]};
  for (size_t d = 0; d < sd; ++d) {
    HALO_CHECK_SHAPE(v[d] >= 1 && in[2 + d] >= 1, who, ": ", cfg.str(), " on input ", to_string(in),
                     ": sizes and factors must be positive");
    out.push_back(cfg.size.empty() ? in[2 + d] * v[d] : v[d]);
  }
  return out;
}

Tensor upsample_forward(const Tensor& x, const UpsampleConfig& cfg, const std::string& who) {
#if HALO_ENABLE_CUDA
  if (x.defined() && x.device().is_cuda()) return gpu_upsample_forward(x, cfg, who);
#endif
  HALO_CHECK_SHAPE(x.defined() && x.device().is_cpu(), who, ": input must be a CPU tensor",
                   x.defined() ? " (got " + x.str() + ")" : std::string());
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

Tensor upsample_backward(const Tensor& dy, const Shape& input_shape, const UpsampleConfig& cfg, MemoryFormat format,
                         const std::string& who) {
#if HALO_ENABLE_CUDA
  if (dy.defined() && dy.device().is_cuda()) return gpu_upsample_backward(dy, input_shape, cfg, format, who);
#endif
  const Shape ys = upsample_output_shape(input_shape, cfg, who);
  HALO_CHECK_SHAPE(dy.defined() && dy.device().is_cpu() && dy.shape() == ys, who, ": output gradient ",
                   dy.defined() ? dy.str() : std::string("(undefined)"), " should be a CPU tensor of shape ",
                   to_string(ys), " for input ", to_string(input_shape));
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

}  // namespace halo::ops
