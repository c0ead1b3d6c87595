#include "halo/ops/concat.hpp"

#include "cpu/concat.hpp"
#include "dense.hpp"

namespace halo::ops {

namespace {
int64_t spatial_size(const Shape& s) {
  int64_t n = 1;
  for (size_t d = 2; d < s.size(); ++d) n *= s[d];
  return n;
}
bool is_cl(const Tensor& t) { return t.dim() >= 3 && t.is_channels_last() && !t.is_contiguous(); }
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
  detail::check_cpu(x_in, "split");
  int64_t total = 0;
  for (auto c : channels) total += c;
  HALO_CHECK_SHAPE(x_in.dim() >= 2 && x_in.size(1) == total, "split: tensor ", x_in.str(), " does not have ", total,
                   " channels to split");
  const bool cl = is_cl(x_in);
  const MemoryFormat fmt = cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
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
