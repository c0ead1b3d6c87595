// Private declarations of the CPU pooling kernels (called only from src/ops/pool.cpp).
#pragma once
#include <memory>

#include "halo/ops/pool.hpp"

namespace halo::kernels::cpu {

/// Plain reference kernels on contiguous tensors, templated on float/double.
/// 2D pooling runs as 3D with a depth of one.
template <class T>
void pool_forward_ref(const Tensor& x, Tensor& y, const ops::PoolConfig& cfg);
/// dx must be zeroed by the caller; max pooling re-finds each window's maximum in x
/// (the first one in scan order, as the forward kernel picks it).
template <class T>
void pool_backward_ref(const Tensor& dy, const Tensor& x, Tensor& dx, const ops::PoolConfig& cfg);

/// Global average pooling on contiguous or channels-last input (other layouts: caller
/// makes them contiguous). y holds N*C values in (n, c) order.
template <class T>
void global_avg_pool_forward(const Tensor& x, T* y);
/// dx (contiguous or channels-last) gets dy[n, c] / spatial everywhere.
template <class T>
void global_avg_pool_backward(const T* dy, Tensor& dx);

/// oneDNN pooling state: primitives for one input shape/layout and the max-pool workspace.
struct OnednnPoolState;
/// True when oneDNN takes this pooling: a kind it has (max, avg) on f32 or bf16 CPU tensors in
/// channels-last layout; the reference kernels run everything else.
bool pool_onednn_supports(const Tensor& x, const ops::PoolConfig& cfg);
/// Forward through oneDNN; (re)creates the primitives in `state` when the shape changed.
Tensor pool_forward_onednn(const Tensor& x, const ops::PoolConfig& cfg, std::shared_ptr<OnednnPoolState>& state);
Tensor pool_backward_onednn(const Tensor& dy, const Tensor& x, const ops::PoolConfig& cfg,
                            std::shared_ptr<OnednnPoolState>& state);

}  // namespace halo::kernels::cpu
