#include "halo/ops/concat.hpp"

#include "cpu/concat.hpp"
#include "dense.hpp"
#include "halo/config.hpp"
#if HALO_ENABLE_CUDA
#include "cuda/ops.hpp"
#include "cuda/tensor_ops.hpp"
#include "halo/cuda/runtime.hpp"
#endif

namespace halo::ops {

namespace {
int64_t spatial_size(const Shape& s) {
  int64_t n = 1;
  for (size_t d = 2; d < s.size(); ++d) n *= s[d];
  return n;
}
bool is_cl(const Tensor& t) { return t.dim() >= 3 && t.is_channels_last() && !t.is_contiguous(); }

#if HALO_ENABLE_CUDA
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
#endif
}  // namespace

Tensor concat_channels(const std::vector<Tensor>& inputs) {
  HALO_CHECK_SHAPE(!inputs.empty(), "concat: no inputs");
  const Tensor& first = inputs[0];
  HALO_CHECK_SHAPE(first.dim() >= 2, "concat: input 0 ", first.str(), " has no channel dimension");
  // Channels-last out when every input can be read as channels-last (one-channel inputs
  // are both layouts at once) and at least one really is.
  bool all_cl = true, any_cl = false;
  int64_t total = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (first.device().is_cuda())
      HALO_CHECK_SHAPE(t.device() == first.device(), "concat: input ", i, " ", t.str(), " is not on the device of ",
                       "input 0 ", first.str());
    else
      detail::check_cpu(t, "concat");
    bool fits = t.dim() == first.dim() && t.dtype() == first.dtype() && t.size(0) == first.size(0);
    for (int d = 2; fits && d < t.dim(); ++d) fits = t.size(d) == first.size(d);
    HALO_CHECK_SHAPE(fits, "concat: input ", i, " ", t.str(), " does not fit input 0 ", first.str(),
                     " (all but the channel dimension must agree)");
    all_cl = all_cl && t.dim() >= 3 && t.is_channels_last();
    any_cl = any_cl || is_cl(t);
    total += t.size(1);
  }
  all_cl = all_cl && any_cl;
  Shape out_shape = first.shape();
  out_shape[1] = total;
  const MemoryFormat fmt = all_cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device(), fmt);
#if HALO_ENABLE_CUDA
  if (out.device().is_cuda()) {
    int64_t c0 = 0;
    for (const auto& t : inputs) {
      gpu_copy_channels(out, c0, t, /*split=*/false, "concat");
      c0 += t.size(1);
    }
    return out;
  }
#endif
  std::vector<Tensor> keep;  // keeps reordered copies alive during the copy
  std::vector<kernels::cpu::ChannelBlock> pieces;
  for (const auto& t : inputs) {
    keep.push_back(t.to_memory_format(fmt));
    pieces.push_back({static_cast<char*>(keep.back().raw_data()), t.size(1)});
  }
  const int64_t s = spatial_size(out_shape), n = out_shape[0];
  kernels::cpu::concat_channels(static_cast<char*>(out.raw_data()), total, pieces, all_cl ? n * s : n,
                                all_cl ? 1 : s, size_of(out.dtype()), /*split=*/false);
  return out;
}

std::vector<Tensor> split_channels(const Tensor& x_in, const std::vector<int64_t>& channels) {
  if (!x_in.defined() || !x_in.device().is_cuda()) detail::check_cpu(x_in, "split");
  int64_t total = 0;
  for (auto c : channels) total += c;
  HALO_CHECK_SHAPE(x_in.dim() >= 2 && x_in.size(1) == total, "split: tensor ", x_in.str(), " does not have ", total,
                   " channels to split");
  const bool cl = is_cl(x_in);
  const MemoryFormat fmt = cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
#if HALO_ENABLE_CUDA
  if (x_in.device().is_cuda()) {
    std::vector<Tensor> pieces;
    int64_t c0 = 0;
    for (auto c : channels) {
      Shape s = x_in.shape();
      s[1] = c;
      pieces.push_back(Tensor::empty(s, x_in.dtype(), x_in.device(), fmt));
      gpu_copy_channels(x_in, c0, pieces.back(), /*split=*/true, "split");
      c0 += c;
    }
    return pieces;
  }
#endif
  Tensor x = x_in.to_memory_format(fmt);
  std::vector<Tensor> out;
  std::vector<kernels::cpu::ChannelBlock> pieces;
  for (auto c : channels) {
    Shape s = x.shape();
    s[1] = c;
    out.push_back(Tensor::empty(s, x.dtype(), x.device(), fmt));
    pieces.push_back({static_cast<char*>(out.back().raw_data()), c});
  }
  const int64_t s = spatial_size(x.shape()), n = x.size(0);
  kernels::cpu::concat_channels(static_cast<char*>(x.raw_data()), total, pieces, cl ? n * s : n, cl ? 1 : s,
                                size_of(x.dtype()), /*split=*/true);
  return out;
}

}  // namespace halo::ops
