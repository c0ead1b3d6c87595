#include "cpu/concat.hpp"

#include <cstring>

namespace halo::kernels::cpu {

void concat_channels(char* whole, int64_t total_channels, const std::vector<ChannelBlock>& pieces, int64_t outer,
                     int64_t inner, size_t elem_size, bool split) {
  const size_t row = size_t(inner) * elem_size;  // bytes of one channel within one outer index
#pragma omp parallel for if (outer * total_channels * inner > (1 << 16)) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    char* w = whole + size_t(o) * size_t(total_channels) * row;
    for (const auto& p : pieces) {
      const size_t bytes = size_t(p.channels) * row;
      char* piece = p.data + size_t(o) * bytes;
      if (split)
        std::memcpy(piece, w, bytes);
      else
        std::memcpy(w, piece, bytes);
      w += bytes;
    }
  }
}

}  // namespace halo::kernels::cpu
