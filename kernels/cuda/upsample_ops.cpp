// The cuda upsampling table (kernels in upsample.cu), f32 or bf16.
#include "cuda/upsample.hpp"
#include "cuda/register.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::ops::cuda_kernels {

namespace cuda = halo::cuda;

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

}  // namespace halo::ops::cuda_kernels

namespace halo::kernels::cuda_ops {

void register_upsample(ops::OpTable& t) {
  static const ops::UpsampleKernels k = {ops::cuda_kernels::gpu_upsample_forward,
                                         ops::cuda_kernels::gpu_upsample_backward};
  t.upsample = &k;
}

}  // namespace halo::kernels::cuda_ops
