// Loss kernels: mean squared and absolute error (loss.cu), weighted cross-entropy
// (cross_entropy.cu). As everywhere in kernels/cuda the launchers take plain device pointers and
// the stream as void* (so the op tables compile with the host compiler alone); element types are
// f32 or bf16 storage (the `bf16` flags) computed in f32, and sums accumulate in f64.
#pragma once
#include <cstdint>

namespace halo::cuda::raw {

enum class DiffLoss { mse, l1 };
/// *out (device double, added to) += sum over i of (p - t)^2 or |p - t|.
void diff_loss(DiffLoss kind, const void* p, bool p_bf16, const void* t, bool t_bf16, int64_t n, double* out,
               void* stream);
/// g = scale * 2 (p - t) or scale * sign(p - t), in p's dtype.
void diff_loss_grad(DiffLoss kind, const void* p, bool p_bf16, const void* t, bool t_bf16, void* g, int64_t n,
                    float scale, void* stream);


/// Logits of pixel p (of batch * spatial) sit at base(p) + k * class_stride: contiguous
/// base = n*K*S + s, stride S; channels-last base = p*K, stride 1.
struct CeDesc {
  int64_t batch = 0, classes = 0, spatial = 1;
  bool channels_last = false;
};
/// Weighted cross-entropy sums. sums[0] += sum over counted pixels of w_y * -log softmax_y,
/// sums[1] += sum of w_y (sums: 2 device doubles); *first_bad (device int64, initialised by
/// the caller to INT64_MAX or any larger-than-any-index value) becomes the smallest pixel
/// index whose label is neither in [0, K) nor ignore_index. weights: K device doubles or
/// null (all 1). When grad is not null it receives scale * w_y (softmax - onehot(y)), zero
/// on ignored pixels and on bad ones, with scale further divided by normaliser[1] (a finished weight sum on
/// the device; 0 when it is 0) when normaliser is not null.
void cross_entropy(const void* logits, bool bf16, const void* labels, bool labels_i64, const CeDesc& d,
                   const double* weights, int64_t ignore_index, double* sums, int64_t* first_bad, void* grad,
                   float scale, void* stream, const double* normaliser = nullptr);

}  // namespace halo::cuda::raw
