#include "cpu/metrics.hpp"

#include <algorithm>
#include <limits>

namespace halo::kernels::cpu {

template <class T, class L>
int64_t confusion_counts(const T* logits, const L* labels, int64_t K, int64_t S, bool channels_last,
                         int64_t ignore_index, int64_t* pred_count, int64_t* label_count, int64_t* intersection) {
  const int64_t cstride = channels_last ? 1 : S;
  int64_t bad = std::numeric_limits<int64_t>::max();
#pragma omp parallel for if (S * K > (1 << 15)) schedule(static) \
    reduction(+ : pred_count[:K], label_count[:K], intersection[:K]) reduction(min : bad)
  for (int64_t s = 0; s < S; ++s) {
    const int64_t y = int64_t(labels[s]);
    if (y == ignore_index) continue;
    if (y < 0 || y >= K) {
      bad = std::min(bad, s);
      continue;
    }
    const T* x = logits + (channels_last ? s * K : s);
    int64_t best = 0;
    for (int64_t k = 1; k < K; ++k)
      if (x[k * cstride] > x[best * cstride]) best = k;
    pred_count[best] += 1;
    label_count[y] += 1;
    intersection[y] += best == y;
  }
  return bad == std::numeric_limits<int64_t>::max() ? -1 : bad;
}

#define HALO_INSTANTIATE(T, L)                                                                             \
  template int64_t confusion_counts<T, L>(const T*, const L*, int64_t, int64_t, bool, int64_t, int64_t*, \
                                          int64_t*, int64_t*);
HALO_INSTANTIATE(float, int32_t)
HALO_INSTANTIATE(float, int64_t)
HALO_INSTANTIATE(double, int32_t)
HALO_INSTANTIATE(double, int64_t)
#undef HALO_INSTANTIATE

}  // namespace halo::kernels::cpu
