// The cuda element-wise table: f32 or bf16 tensors on one GPU, flat over any dense layout
// (kernels in elementwise.cu, ops.cu and dropout.cu).
#include "cuda/elementwise.hpp"
#include "cuda/register.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#include "halo/util/random.hpp"

namespace halo::kernels::cuda_ops {
namespace {

namespace cuda = halo::cuda;
using ops::Activation;

Tensor activation_forward_op(Activation a, const Tensor& x, double slope) {
  Tensor y = Tensor::empty_like(x);
  cuda::activation_forward(a, x, y, float(slope));
  return y;
}

Tensor activation_backward_op(Activation a, const Tensor& y, const Tensor& gy, double slope) {
  Tensor gx = Tensor::empty_like(y);
  // The kernels read the input's sign for relu/leaky_relu; the output has the same sign.
  cuda::activation_backward(a, y, y, gy, gx, float(slope));
  return gx;
}

void axpby_op(Tensor& y, double alpha, const Tensor& x, double beta) {
  const bool bf = cuda::is_bf16(y, "axpby");
  cuda::DeviceGuard g(y.device().index);
  cuda::raw::axpby(float(alpha), x.raw_data(), float(beta), y.raw_data(), y.numel(), bf, cuda::stream_of(y));
}

void scale_op(Tensor& x, double alpha) { cuda::scale(x, float(alpha)); }

Tensor mul_op(const Tensor& a, const Tensor& b) {
  Tensor y = Tensor::empty_like(a);
  const bool bf = cuda::is_bf16(a, "mul");
  cuda::DeviceGuard g(a.device().index);
  cuda::raw::mul(a.raw_data(), b.raw_data(), y.raw_data(), a.numel(), bf, cuda::stream_of(a));
  return y;
}

double dot_op(const Tensor& a, const Tensor* b) { return cuda::reduce_dot(a, b); }

Tensor dropout_mask_op(const Tensor& like, double p, uint64_t seed, uint64_t step, const uint64_t* key_on_device) {
  // Drawn on the device from the CPU's counter-based generator: the same mask, bit for bit,
  // in the same layout as the cpu kernel gives.
  const bool bf = cuda::is_bf16(like, "dropout");
  cuda::raw::DropoutDesc d;
  d.channels_last = like.dim() >= 3 && like.is_channels_last() && !like.is_contiguous();
  d.outer = like.dim() >= 1 ? like.size(0) : 1;
  d.channels = like.dim() >= 2 ? like.size(1) : 1;
  d.inner = d.outer * d.channels == 0 ? 0 : like.numel() / (d.outer * d.channels);
  Tensor mask = Tensor::empty(like.shape(), like.dtype(), like.device(),
                              d.channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous);
  cuda::DeviceGuard g(like.device().index);
  cuda::raw::dropout_mask(mask.raw_data(), bf, d, CounterRng(seed, step).key(), key_on_device, p,
                          float(1.0 / (1.0 - p)), cuda::stream_of(mask));
  return mask;
}

const ops::ElementwiseKernels kTable = {activation_forward_op, activation_backward_op, axpby_op, scale_op,
                                        mul_op,                dot_op,                 dropout_mask_op};

}  // namespace

void register_elementwise(ops::OpTable& t) { t.elementwise = &kTable; }

}  // namespace halo::kernels::cuda_ops
