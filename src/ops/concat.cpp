// Channel concatenation and split: checks and the output layout, then the kernels of the
// operands' device (op_table.hpp).
#include "halo/ops/concat.hpp"

#include "op_table.hpp"

namespace halo::ops {

namespace {
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
    HALO_CHECK_SHAPE(t.defined() && t.device() == first.device(), "concat: input ", i, " ", t.str(),
                     " is not on the device of input 0 ", first.str());
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
  concat_kernels(out.device(), "concat").concat(out, inputs);
  return out;
}

std::vector<Tensor> split_channels(const Tensor& x_in, const std::vector<int64_t>& channels) {
  HALO_CHECK_SHAPE(x_in.defined(), "split: undefined tensor");
  int64_t total = 0;
  for (auto c : channels) total += c;
  HALO_CHECK_SHAPE(x_in.dim() >= 2 && x_in.size(1) == total, "split: tensor ", x_in.str(), " does not have ", total,
                   " channels to split");
  const bool cl = is_cl(x_in);
  const MemoryFormat fmt = cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
  std::vector<Tensor> out;
  for (auto c : channels) {
    Shape s = x_in.shape();
    s[1] = c;
    out.push_back(Tensor::empty(s, x_in.dtype(), x_in.device(), fmt));
  }
  concat_kernels(x_in.device(), "split").split(x_in, out);
  return out;
}

}  // namespace halo::ops
