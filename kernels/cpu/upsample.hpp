// Private declarations of the CPU upsampling kernels (called only from src/ops/upsample.cpp).
#pragma once
#include "halo/ops/upsample.hpp"

namespace halo::kernels::cpu {

/// Reference kernels on contiguous tensors; 2D runs as 3D with depth 1.
/// Backward kernels accumulate into a zeroed dx.
template <class T>
void upsample_nearest_forward_ref(const Tensor& x, Tensor& y);
template <class T>
void upsample_nearest_backward_ref(const Tensor& dy, Tensor& dx);
template <class T>
void upsample_bilinear_forward_ref(const Tensor& x, Tensor& y, bool align_corners);
template <class T>
void upsample_bilinear_backward_ref(const Tensor& dy, Tensor& dx, bool align_corners);

}  // namespace halo::kernels::cpu
