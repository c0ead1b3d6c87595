#include "cuda/tensor_ops.hpp"

#include "cuda/check.hpp"
#include "cuda/elementwise.hpp"
#include "cuda/strided_copy.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::cuda {

void* stream_of(const Tensor& t) { return current_stream(t.device().index); }

bool is_bf16(const Tensor& t, const char* who) {
  HALO_CHECK_SHAPE(t.defined() && t.device().is_cuda(), who, ": expected a cuda tensor, got ",
                   t.defined() ? t.str() : std::string("undefined"));
  HALO_CHECK_SHAPE(t.dtype() == DType::f32 || t.dtype() == DType::bf16, who, ": ", t.str(),
                   " has dtype ", name(t.dtype()), "; the CUDA kernels take f32 or bf16");
  return t.dtype() == DType::bf16;
}

namespace {
bool float_like(DType d) { return d == DType::f32 || d == DType::bf16; }
}  // namespace

bool convert(Tensor& dst, const Tensor& src, bool accumulate) {
  if (!float_like(dst.dtype()) || !float_like(src.dtype())) return false;
  HALO_CHECK_SHAPE(dst.shape() == src.shape() && dst.device() == src.device() && dst.device().is_cuda(),
                   "cuda convert: ", dst.str(), " and ", src.str(), " must have one shape on one GPU");
  HALO_CHECK_SHAPE(dst.dim() <= 8, "cuda convert: at most 8 dimensions, got ", dst.str());
  raw::StridedDesc d;
  d.nd = dst.dim();
  for (int k = 0; k < d.nd; ++k) {
    d.shape[k] = dst.shape()[size_t(k)];
    d.dst_stride[k] = dst.strides()[size_t(k)];
    d.src_stride[k] = src.strides()[size_t(k)];
  }
  DeviceGuard g(dst.device().index);
  raw::strided_copy(dst.raw_data(), dst.dtype() == DType::bf16, src.raw_data(), src.dtype() == DType::bf16, d,
                    accumulate, stream_of(dst));
  return true;
}

Tensor cast(const Tensor& t, DType dt) {
  if (t.dtype() == dt) return t;
  Tensor out = Tensor::empty_strided(t.shape(), t.strides(), dt, t.device());
  HALO_CHECK_SHAPE(convert(out, t), "cuda cast: ", t.str(), " to ", name(dt), " is not supported");
  return out;
}

bool fill_dense(Tensor& t, double value) {
  if (!t.is_dense()) return false;
  if (value == 0.0) {
    // Zero is all-zero bytes in every dtype: one memset on the stream, for f64 and integer
    // tensors too (no host copy, so a CUDA graph can capture it).
    DeviceGuard g(t.device().index);
    HALO_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, t.nbytes(), static_cast<cudaStream_t>(stream_of(t))));
    return true;
  }
  if (!float_like(t.dtype())) return false;
  DeviceGuard g(t.device().index);
  raw::fill(t.raw_data(), t.numel(), t.dtype() == DType::bf16, float(value), stream_of(t));
  return true;
}

}  // namespace halo::cuda

namespace halo::cuda {

double reduce_dot(const Tensor& a, const Tensor* b) {
  const bool bf = is_bf16(a, "cuda reduce");
  const int dev = a.device().index;
  DeviceGuard g(dev);
  Tensor acc = Tensor::empty({1}, DType::f64, a.device());
  auto s = static_cast<cudaStream_t>(stream_of(a));
  HALO_CUDA_CHECK(cudaMemsetAsync(acc.raw_data(), 0, sizeof(double), s));
  raw::dot(a.raw_data(), b ? b->raw_data() : nullptr, a.numel(), bf, static_cast<double*>(acc.raw_data()), s);
  double out = 0;
  HALO_CUDA_CHECK(cudaMemcpyAsync(&out, acc.raw_data(), sizeof(double), cudaMemcpyDeviceToHost, s));
  HALO_CUDA_CHECK(cudaStreamSynchronize(s));
  return out;
}

}  // namespace halo::cuda
