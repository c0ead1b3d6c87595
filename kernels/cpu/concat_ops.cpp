// The cpu concat table: block copies (concat.cpp) in the output's layout.
#include "cpu/concat.hpp"
#include "cpu/register.hpp"

namespace halo::kernels::cpu {
namespace {

int64_t spatial_size(const Shape& s) {
  int64_t n = 1;
  for (size_t d = 2; d < s.size(); ++d) n *= s[d];
  return n;
}

bool is_cl(const Tensor& t) { return t.dim() >= 3 && t.is_channels_last() && !t.is_contiguous(); }

void concat(Tensor& out, const std::vector<Tensor>& inputs) {
  const bool cl = is_cl(out);
  const MemoryFormat fmt = cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  std::vector<Tensor> keep;  // keeps reordered copies alive during the copy
  std::vector<ChannelBlock> pieces;
  for (const auto& t : inputs) {
    keep.push_back(t.to_memory_format(fmt));
    pieces.push_back({static_cast<char*>(keep.back().raw_data()), t.size(1)});
  }
  const int64_t s = spatial_size(out.shape()), n = out.size(0);
  concat_channels(static_cast<char*>(out.raw_data()), out.size(1), pieces, cl ? n * s : n, cl ? 1 : s,
                  size_of(out.dtype()), /*split=*/false);
}

void split(const Tensor& x_in, std::vector<Tensor>& out) {
  const bool cl = is_cl(x_in);
  const Tensor x = x_in.to_memory_format(cl ? MemoryFormat::channels_last : MemoryFormat::contiguous);
  std::vector<ChannelBlock> pieces;
  for (auto& t : out) pieces.push_back({static_cast<char*>(t.raw_data()), t.size(1)});
  const int64_t s = spatial_size(x.shape()), n = x.size(0);
  concat_channels(static_cast<char*>(x.raw_data()), x.size(1), pieces, cl ? n * s : n, cl ? 1 : s,
                  size_of(x.dtype()), /*split=*/true);
}

const ops::ConcatKernels kTable = {concat, split};

}  // namespace

void register_concat(ops::OpTable& t) { t.concat = &kTable; }

}  // namespace halo::kernels::cpu
