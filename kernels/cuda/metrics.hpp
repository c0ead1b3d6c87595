// Metric kernels: the confusion counts of the IoU (metrics.cu). As everywhere in kernels/cuda the
// launchers take plain device pointers and the stream as void* (so the op tables compile with the
// host compiler alone); element types are f32 or bf16 storage (the `bf16` flags) computed in f32,
// and sums accumulate in f64.
#pragma once
#include <cstdint>

#include "cuda/loss.hpp"

namespace halo::cuda::raw {

/// Per-sample confusion counts of the arg-max prediction (first on ties): counts holds
/// 3 * N * K device int64 laid out [pred (N*K), label (N*K), intersection (N*K)], added to.
/// *first_bad as in cross_entropy (flat pixel index over N * spatial).
void confusion_counts(const void* logits, bool bf16, const void* labels, bool labels_i64, const CeDesc& d,
                      int64_t ignore_index, int64_t* counts, int64_t* first_bad, void* stream);

}  // namespace halo::cuda::raw
