// Byte-copying kernels of channel concatenation. Both layouts are (outer, C, inner) in memory:
// contiguous NC[spatial] has outer = N, inner = spatial size; channels-last has
// outer = N * spatial size, inner = 1.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace halo::kernels::cpu {

struct ChannelBlock {
  char* data;        ///< the piece (dst of split, src of concat)
  int64_t channels;  ///< its channel count
};

/// Copies each piece into its channel range of `whole` (concat) or back out (split).
void concat_channels(char* whole, int64_t total_channels, const std::vector<ChannelBlock>& pieces, int64_t outer,
                     int64_t inner, size_t elem_size, bool split);

}  // namespace halo::kernels::cpu
