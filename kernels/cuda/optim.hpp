// The optimizer updates (optim.cu) on f32 master weights and state; see
// halo/optim/update_rules.hpp for the formulas. The LAMB norms are f64 device reductions whose
// two doubles come back to the host to form the trust ratio. As everywhere in kernels/cuda the
// launchers take plain device pointers and the stream as void* (so the op tables compile with the
// host compiler alone); element types are f32 or bf16 storage (the `bf16` flags) computed in f32,
// and sums accumulate in f64.
#pragma once
#include <cstdint>

namespace halo::cuda::raw {

/// f32 master weights; see halo/optim/update_rules.hpp for the formulas.
void sgd_update(float* w, const float* g, float* buf, int64_t n, float lr, float momentum, float wd, bool nesterov,
                void* stream);
/// One parameter of sgd_update_multi.
struct SgdTensor {
  float* w;
  const float* g;
  float* buf;  ///< null without momentum
  int64_t n;
  float wd;
};
/// sgd_update over `count` parameters in one launch per kMultiTensor of them (a 2-D grid:
/// y picks the parameter, x strides over its elements); the list is passed by value in the
/// kernel's parameters, so nothing is copied to the device first and a graph can capture it.
constexpr int kMultiTensor = 64;
void sgd_update_multi(const SgdTensor* list, int count, float lr, float momentum, bool nesterov, void* stream);

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                 float wd, bool decoupled, float bias1, float bias2, void* stream);


/// LAMB pass 1: m, v updated in place; sums[0] += sum w^2, sums[1] += sum u^2 with
/// u = (m*ib1)/(sqrt(v*ib2)+eps) + wd*w (sums: 2 device doubles).
void lamb_moments(const float* w, const float* g, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                  float wd, float ib1, float ib2, double* sums, void* stream);
/// LAMB pass 2: w -= lr * r * u (u recomputed from the updated moments), the trust ratio
/// r = sqrt(sums[0]) / sqrt(sums[1]) (1 when either is 0; at most max_trust when > 0) formed
/// on the device from pass 1's sums; *trust (a device double, may be null) receives it.
void lamb_apply(float* w, const float* m, const float* v, int64_t n, float eps, float wd, float ib1, float ib2,
                float lr, float max_trust, const double* sums, double* trust, void* stream);
/// LARS: v = mu*v + scaled_lr*(g + wd*w); w -= v.
void lars_apply(float* w, const float* g, float* v, int64_t n, float mu, float wd, float scaled_lr, void* stream);

}  // namespace halo::cuda::raw
