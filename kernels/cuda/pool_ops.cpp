// The cuda pooling table: own kernels over explicit strides (kernels in ops.cu and
// global_pool.cu), f32 or bf16.
#include "cuda/pool.hpp"
#include "cuda/register.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::kernels::cuda_ops {
namespace {

namespace cuda = halo::cuda;
using namespace halo::ops;

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
  d.kind = cfg.kind;
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

Tensor pool_forward_op(const Tensor& x, const PoolConfig& cfg, PoolPlan*, const std::string& who) {
  return gpu_pool_forward(x, cfg, pool_output_shape(x.shape(), cfg, who));
}

Tensor pool_backward_op(const Tensor& dy, const Tensor& x, const PoolConfig& cfg, PoolPlan*, const std::string& who) {
  HALO_CHECK_SHAPE(dy.defined() && dy.shape() == pool_output_shape(x.shape(), cfg, who), who, ": output gradient ",
                   dy.defined() ? dy.str() : "undefined", " does not match the output of input ", x.str());
  return gpu_pool_backward(dy, x, cfg, who);
}

const PoolKernels kTable = {pool_forward_op, pool_backward_op, gpu_global_avg_pool_forward,
                            gpu_global_avg_pool_backward};

}  // namespace

void register_pool(ops::OpTable& t) { t.pool = &kTable; }

}  // namespace halo::kernels::cuda_ops
