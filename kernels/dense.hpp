// Helpers of the op entry points and kernels: bringing operands into a dense, shared layout
// so kernels can treat them as flat arrays.
#pragma once
#include <string>

#include "halo/tensor/tensor.hpp"

namespace halo::ops::detail {

/// x itself when its elements fill a dense block, else a contiguous copy.
inline Tensor dense(const Tensor& x) { return x.is_dense() ? x : x.contiguous(); }

/// True when a and b are dense and element i of one sits at flat slot i of the other.
inline bool same_layout(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || !a.is_dense() || !b.is_dense()) return false;
  if (a.is_contiguous() && b.is_contiguous()) return true;
  if (a.is_channels_last() && b.is_channels_last()) return true;
  return a.strides() == b.strides();
}

/// x laid out like `like` (a dense tensor of the same shape): x itself or a reordered copy.
inline Tensor in_layout_of(const Tensor& x, const Tensor& like) {
  if (same_layout(x, like)) return x;
  Tensor t = Tensor::empty_strided(like.shape(), like.strides(), x.dtype(), x.device());
  t.copy_(x);
  return t;
}

/// Throws unless t lives on the CPU (for the CPU kernels and the reference ops).
inline void check_cpu(const Tensor& t, const std::string& what) {
  HALO_CHECK_SHAPE(t.device().is_cpu(), what, ": tensor ", t.str(),
                   " is on a device without a kernel for this op in this build; move it to the cpu");
}

}  // namespace halo::ops::detail
