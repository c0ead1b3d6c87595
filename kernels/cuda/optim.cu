// The optimizer updates: SGD and Adam (declared in ops.hpp), LAMB and LARS (optim_ops.hpp): grid-stride element loops; the LAMB
// norms accumulate per thread in f64 and leave each block through one atomic per sum.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/launch.cuh"
#include "cuda/optim.hpp"

namespace halo::cuda::raw {

namespace {

// The CPU rule's expression, in the same order, so f32 results agree to rounding.
__device__ __forceinline__ float adam_direction(float m, float v, float ib1, float ib2, float eps) {
  return (m * ib1) / (sqrtf(v * ib2) + eps);
}

__global__ void lamb_moments_kernel(const float* w, const float* g, float* m, float* v, int64_t n, float b1, float b2,
                                    float eps, float wd, float ib1, float ib2, double* sums) {
  double w2 = 0, u2 = 0;
  HALO_GRID_LOOP(i, n) {
    const float mi = b1 * m[i] + (1.f - b1) * g[i];
    const float vi = b2 * v[i] + (1.f - b2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    const float u = adam_direction(mi, vi, ib1, ib2, eps) + wd * w[i];
    w2 += double(w[i]) * double(w[i]);
    u2 += double(u) * double(u);
  }
  __shared__ double sw[kThreads / 32], su[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    w2 += __shfl_down_sync(0xffffffffu, w2, o);
    u2 += __shfl_down_sync(0xffffffffu, u2, o);
  }
  if ((threadIdx.x & 31) == 0) {
    sw[threadIdx.x / 32] = w2;
    su[threadIdx.x / 32] = u2;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double a = 0, b = 0;
    for (int k = 0; k < kThreads / 32; ++k) {
      a += sw[k];
      b += su[k];
    }
    atomicAdd(&sums[0], a);
    atomicAdd(&sums[1], b);
  }
}

// The host rule's trust ratio (update_rules.hpp), in double as the host forms it.
__device__ __forceinline__ double lamb_trust(const double* sums, float max_trust) {
  const double wn = sqrt(sums[0]), un = sqrt(sums[1]);
  double r = (wn > 0 && un > 0) ? wn / un : 1.0;
  if (max_trust > 0 && r > max_trust) r = max_trust;
  return r;
}

__global__ void lamb_apply_kernel(float* w, const float* m, const float* v, int64_t n, float eps, float wd, float ib1,
                                  float ib2, float lr, float max_trust, const double* sums, double* trust) {
  const double r = lamb_trust(sums, max_trust);
  const float step = float(double(lr) * r);
  if (trust && blockIdx.x == 0 && threadIdx.x == 0) *trust = r;
  HALO_GRID_LOOP(i, n) w[i] -= step * (adam_direction(m[i], v[i], ib1, ib2, eps) + wd * w[i]);
}

__global__ void lars_apply_kernel(float* w, const float* g, float* v, int64_t n, float mu, float wd, float slr) {
  HALO_GRID_LOOP(i, n) {
    const float vi = mu * v[i] + slr * (g[i] + wd * w[i]);
    v[i] = vi;
    w[i] -= vi;
  }
}

struct SgdList {
  SgdTensor t[kMultiTensor];
};

__device__ __forceinline__ void sgd_element(float* w, const float* g, float* buf, int64_t i, float lr, float mu,
                                            float wd, bool nesterov) {
  float d = g[i] + wd * w[i];
  if (buf) {
    const float b = mu * buf[i] + d;
    buf[i] = b;
    d = nesterov ? d + mu * b : b;
  }
  w[i] -= lr * d;
}

__global__ void sgd_kernel(float* w, const float* g, float* buf, int64_t n, float lr, float mu, float wd,
                           bool nesterov) {
  HALO_GRID_LOOP(i, n) sgd_element(w, g, buf, i, lr, mu, wd, nesterov);
}

__global__ void sgd_multi_kernel(SgdList list, float lr, float mu, bool nesterov) {
  const SgdTensor& t = list.t[blockIdx.y];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < t.n; i += int64_t(gridDim.x) * blockDim.x)
    sgd_element(t.w, t.g, t.buf, i, lr, mu, t.wd, nesterov);
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                            float eps, float l2, float shrink, float ib1, float ib2) {
  HALO_GRID_LOOP(i, n) {
    const float gi = g[i] + l2 * w[i];
    const float mi = b1 * m[i] + (1.f - b1) * gi;
    const float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = shrink * w[i] - lr * (mi * ib1) / (sqrtf(vi * ib2) + eps);
  }
}

}  // namespace

void lamb_moments(const float* w, const float* g, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                  float wd, float ib1, float ib2, double* sums, void* stream) {
  if (n == 0) return;
  lamb_moments_kernel<<<blocks_for(n, 1024), kThreads, 0, as_stream(stream)>>>(w, g, m, v, n, beta1, beta2, eps, wd,
                                                                                ib1, ib2, sums);
  HALO_CUDA_CHECK_LAUNCH("lamb_moments");
}

void lamb_apply(float* w, const float* m, const float* v, int64_t n, float eps, float wd, float ib1, float ib2,
                float lr, float max_trust, const double* sums, double* trust, void* stream) {
  lamb_apply_kernel<<<blocks_for(n, 8192), kThreads, 0, as_stream(stream)>>>(w, m, v, n, eps, wd, ib1, ib2, lr,
                                                                             max_trust, sums, trust);
  HALO_CUDA_CHECK_LAUNCH("lamb_apply");
}

void lars_apply(float* w, const float* g, float* v, int64_t n, float mu, float wd, float scaled_lr, void* stream) {
  if (n == 0) return;
  lars_apply_kernel<<<blocks_for(n, 8192), kThreads, 0, as_stream(stream)>>>(w, g, v, n, mu, wd, scaled_lr);
  HALO_CUDA_CHECK_LAUNCH("lars_apply");
}

void sgd_update(float* w, const float* g, float* buf, int64_t n, float lr, float momentum, float wd, bool nesterov,
                void* stream) {
  if (n == 0) return;
  sgd_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(w, g, buf, n, lr, momentum, wd, nesterov);
  HALO_CUDA_CHECK_LAUNCH("sgd_update");
}

void sgd_update_multi(const SgdTensor* list, int count, float lr, float momentum, bool nesterov, void* stream) {
  for (int first = 0; first < count; first += kMultiTensor) {
    SgdList l{};
    const int k = std::min(kMultiTensor, count - first);
    int64_t largest = 0;
    for (int j = 0; j < k; ++j) {
      l.t[j] = list[first + j];
      largest = std::max(largest, l.t[j].n);
    }
    if (largest == 0) continue;
    const dim3 grid(blocks_for(largest, 1024), unsigned(k));
    sgd_multi_kernel<<<grid, kThreads, 0, as_stream(stream)>>>(l, lr, momentum, nesterov);
    HALO_CUDA_CHECK_LAUNCH("sgd_update_multi");
  }
}

void adam_update(float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
                 float wd, bool decoupled, float bias1, float bias2, void* stream) {
  if (n == 0) return;
  const float l2 = decoupled ? 0.f : wd, shrink = decoupled ? 1.f - lr * wd : 1.f;
  adam_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(w, g, m, v, n, lr, beta1, beta2, eps, l2, shrink,
                                                                 1.f / bias1, 1.f / bias2);
  HALO_CUDA_CHECK_LAUNCH("adam_update");
}

}  // namespace halo::cuda::raw
