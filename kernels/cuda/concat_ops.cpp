// The cuda concat table: strided copies (ops.cu), f32 or bf16.
#include "cuda/strided_copy.hpp"
#include "cuda/register.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::kernels::cuda_ops {
namespace {

namespace cuda = halo::cuda;

// On the GPU each piece is one strided copy into (or out of) its channel range of the whole,
// read in whatever layout it has: no reordered copies, f32 or bf16.
void gpu_copy_channels(const Tensor& whole, int64_t c0, const Tensor& piece, bool split, const char* who) {
  HALO_CHECK_SHAPE(piece.dim() <= 8, who, ": at most 8 dimensions on the GPU, got ", piece.str());
  HALO_CHECK_SHAPE(piece.device() == whole.device() && piece.dtype() == whole.dtype(), who, ": ", piece.str(),
                   " and ", whole.str(), " must share dtype and GPU");
  const bool bf16 = cuda::is_bf16(whole, who);
  cuda::raw::StridedDesc d;
  d.nd = piece.dim();
  for (int k = 0; k < d.nd; ++k) {
    d.shape[k] = piece.size(k);
    d.dst_stride[k] = split ? piece.strides()[size_t(k)] : whole.strides()[size_t(k)];
    d.src_stride[k] = split ? whole.strides()[size_t(k)] : piece.strides()[size_t(k)];
  }
  char* at = static_cast<char*>(whole.raw_data()) + c0 * whole.strides()[1] * int64_t(size_of(whole.dtype()));
  cuda::DeviceGuard guard(whole.device().index);
  if (split)
    cuda::raw::strided_copy(piece.raw_data(), bf16, at, bf16, d, false, cuda::stream_of(whole));
  else
    cuda::raw::strided_copy(at, bf16, piece.raw_data(), bf16, d, false, cuda::stream_of(whole));
}

void concat(Tensor& out, const std::vector<Tensor>& inputs) {
  int64_t c0 = 0;
  for (const auto& t : inputs) {
    gpu_copy_channels(out, c0, t, /*split=*/false, "concat");
    c0 += t.size(1);
  }
}

void split(const Tensor& x, std::vector<Tensor>& pieces) {
  int64_t c0 = 0;
  for (auto& p : pieces) {
    gpu_copy_channels(x, c0, p, /*split=*/true, "split");
    c0 += p.size(1);
  }
}

const ops::ConcatKernels kTable = {concat, split};

}  // namespace

void register_concat(ops::OpTable& t) { t.concat = &kTable; }

}  // namespace halo::kernels::cuda_ops
