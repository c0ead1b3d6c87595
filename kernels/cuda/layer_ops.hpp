// Launchers of the CUDA kernels behind BatchNorm, cross-entropy and the channel copies of
// concat/split (kernels in batchnorm.cu and cross_entropy.cu). As in ops.hpp they take plain
// device pointers and the stream as void*, element types f32 or bf16 storage (`bf16`),
// arithmetic in f32 and sums in f64.
#pragma once
#include <cstdint>

namespace halo::cuda::raw {

/// A dense (N, C, ...) tensor seen as n flat elements whose channel is (i / inner) % C:
/// inner = 1 for channels-last (and for (N, C) matrices), the spatial size when contiguous.
struct ChannelLayout {
  int64_t n = 0, C = 0, inner = 1;
};

/// out[c] += sum of x, out[C + c] += sum of x^2 over channel c (out: 2C device doubles).
void bn_stats(const void* x, bool bf16, const ChannelLayout& l, double* out, void* stream);
/// y = x * scale[c] + shift[c], then max(y, 0) when `relu` (scale, shift: C device floats).
void bn_affine(const void* x, void* y, bool bf16, const ChannelLayout& l, const float* scale, const float* shift,
               bool relu, void* stream);
/// With g' = dy, or dy where relu_y > 0 and 0 elsewhere when relu_y is not null:
/// out[c] += sum g', out[C + c] += sum g' * (x - mean[c]) (mean: C device doubles).
void bn_grad_sums(const void* dy, const void* x, const void* relu_y, bool bf16, const ChannelLayout& l,
                  const double* mean, double* out, void* stream);
/// dx = k[c] * g' + p[c] * x + q[c] (g' as above; k, p, q: C device floats).
void bn_grad_input(const void* dy, const void* x, const void* relu_y, void* dx, bool bf16, const ChannelLayout& l,
                   const float* k, const float* p, const float* q, void* stream);

/// Logits of pixel p (of batch * spatial) sit at base(p) + k * class_stride: contiguous
/// base = n*K*S + s, stride S; channels-last base = p*K, stride 1.
struct CeDesc {
  int64_t batch = 0, classes = 0, spatial = 1;
  bool channels_last = false;
};
/// Weighted cross-entropy sums. sums[0] += sum over counted pixels of w_y * -log softmax_y,
/// sums[1] += sum of w_y (sums: 2 device doubles); *first_bad (device int64, initialised by
/// the caller to INT64_MAX) becomes the smallest pixel index whose label is neither in
/// [0, K) nor ignore_index. weights: K device doubles or null (all 1). When grad is not
/// null it receives scale * w_y (softmax - onehot(y)), zero on ignored pixels.
void cross_entropy(const void* logits, bool bf16, const void* labels, bool labels_i64, const CeDesc& d,
                   const double* weights, int64_t ignore_index, double* sums, int64_t* first_bad, void* grad,
                   float scale, void* stream);

/// Upsampling of (N, C, D, H, W) with explicit strides (2-D inputs use D = 1; bilinear is
/// 2-D only). Source coordinates as in halo/ops/upsample.hpp.
struct UpsampleDesc {
  int64_t N = 0, C = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t xs[5] = {}, ys[5] = {};  ///< strides of N, C, D, H, W of input and output
  bool bilinear = false;
  bool align_corners = false;
};
void upsample_forward(const void* x, void* y, bool bf16, const UpsampleDesc& d, void* stream);
/// dx (f32, input's strides, zeroed by the caller) += the gradient scattered from dy.
void upsample_backward(const void* dy, bool bf16, float* dx, const UpsampleDesc& d, void* stream);

/// Per-sample confusion counts of the arg-max prediction (first on ties): counts holds
/// 3 * N * K device int64 laid out [pred (N*K), label (N*K), intersection (N*K)], added to.
/// *first_bad as in cross_entropy (flat pixel index over N * spatial).
void confusion_counts(const void* logits, bool bf16, const void* labels, bool labels_i64, const CeDesc& d,
                      int64_t ignore_index, int64_t* counts, int64_t* first_bad, void* stream);

}  // namespace halo::cuda::raw
