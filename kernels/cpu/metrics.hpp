#pragma once
#include <cstdint>

namespace halo::kernels::cpu {

/// Per-class counts over the pixels of one sample. Logits of pixel s of this sample sit at
/// logits[base(s) + k * class_stride]: contiguous base = s, stride S; channels-last
/// base = s * K, stride 1. Returns -1, or the index of the first pixel with a bad label.
template <class T, class L>
int64_t confusion_counts(const T* logits, const L* labels, int64_t K, int64_t S, bool channels_last,
                         int64_t ignore_index, int64_t* pred_count, int64_t* label_count, int64_t* intersection);

}  // namespace halo::kernels::cpu
