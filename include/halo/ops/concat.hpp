// Concatenation along the channel dimension (dimension 1) and its inverse, for any dtype.
// Inputs may be in any layout; the result is channels-last when every input is, else
// contiguous. `split_channels` returns pieces in the gradient's layout.
#pragma once
#include <vector>

#include "halo/tensor/tensor.hpp"

namespace halo::ops {

/// Inputs (N, C_i, spatial...) with equal N and spatial sizes -> (N, sum C_i, spatial...).
Tensor concat_channels(const std::vector<Tensor>& inputs);
/// Splits (N, sum C_i, spatial...) into pieces of C_i channels each.
std::vector<Tensor> split_channels(const Tensor& x, const std::vector<int64_t>& channels);

}  // namespace halo::ops
