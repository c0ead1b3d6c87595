// BatchNorm kernels (declared in layer_ops.hpp): per-channel sums in f64 and the per-element
// affine maps of forward and backward. Channels-last sums read rows of C neighbouring values
// (a warp covers 32 channels of one row); contiguous sums reduce one (n, c) plane per block
// row. Each block adds its partial sums with one f64 atomic per channel.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/launch.cuh"
#include "cuda/batchnorm.hpp"

namespace halo::cuda::raw {

namespace {

constexpr int kRows = 8;  // threadIdx.y extent of the channels-last sums

// The two values a channel sums for element i of channel c.
template <class T>
struct StatsTerms {
  const T* x;
  __device__ void operator()(int64_t i, int64_t, double& a, double& b) const {
    const double v = ld(x, i);
    a += v;
    b += v * v;
  }
};

template <class T>
struct GradTerms {
  const T* dy;
  const T* x;
  const T* relu_y;  // null without the fused ReLU
  const double* mean;
  __device__ void operator()(int64_t i, int64_t c, double& a, double& b) const {
    if (relu_y && !(ld(relu_y, i) > 0.f)) return;
    const double g = ld(dy, i);
    a += g;
    b += g * (double(ld(x, i)) - mean[c]);
  }
};

template <class Terms>
__global__ void column_sums2(Terms t, int64_t rows, int C, double* out) {
  __shared__ double pa[kRows][33], pb[kRows][33];
  const int c = int(blockIdx.x) * 32 + int(threadIdx.x);
  double a = 0, b = 0;
  if (c < C)
    for (int64_t r = int64_t(blockIdx.y) * kRows + threadIdx.y; r < rows; r += int64_t(gridDim.y) * kRows)
      t(r * C + c, c, a, b);
  pa[threadIdx.y][threadIdx.x] = a;
  pb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    double sa = 0, sb = 0;
    for (int k = 0; k < kRows; ++k) {
      sa += pa[k][threadIdx.x];
      sb += pb[k][threadIdx.x];
    }
    atomicAdd(&out[c], sa);
    atomicAdd(&out[C + c], sb);
  }
}

template <class Terms>
__global__ void plane_sums2(Terms t, int64_t planes, int64_t C, int64_t inner, double* out) {
  for (int64_t p = blockIdx.y; p < planes; p += gridDim.y) {
    const int64_t c = p % C;
    double a = 0, b = 0;
    for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < inner; i += int64_t(gridDim.x) * kThreads)
      t(p * inner + i, c, a, b);
    block_sum2(a, b);
    if (threadIdx.x == 0) {
      atomicAdd(&out[c], a);
      atomicAdd(&out[C + c], b);
    }
  }
}

template <class Terms>
void launch_sums(const Terms& t, const ChannelLayout& l, double* out, cudaStream_t s) {
  if (l.n == 0 || l.C == 0) return;
  // About 2048 blocks: enough to fill the GPU, few enough that the closing atomics (two per
  // channel and block) cost nothing next to the reads.
  if (l.inner == 1) {
    const int64_t rows = l.n / l.C;
    const unsigned gx = unsigned((l.C + 31) / 32);
    const unsigned gy = unsigned(std::max<int64_t>(
        1, std::min<int64_t>({(rows + kRows - 1) / kRows, std::max<int64_t>(1, 2048 / gx), 65535})));
    column_sums2<<<dim3(gx, gy), dim3(32, kRows), 0, s>>>(t, rows, int(l.C), out);
  } else {
    const int64_t planes = l.n / l.inner;
    const unsigned gy = unsigned(std::min<int64_t>(planes, 65535));
    const unsigned gx = unsigned(std::max<int64_t>(
        1, std::min<int64_t>((l.inner + kThreads * 8 - 1) / (kThreads * 8), std::max<int64_t>(1, 2048 / gy))));
    plane_sums2<<<dim3(gx, gy), kThreads, 0, s>>>(t, planes, l.C, l.inner, out);
  }
}

template <class T>
__global__ void affine_kernel(const T* x, T* y, int64_t n, int64_t C, int64_t inner, const float* scale,
                              const float* shift, bool relu) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / inner) % C;
    float v = ld(x, i) * scale[c] + shift[c];
    if (relu) v = v > 0.f ? v : 0.f;
    st(y, i, v);
  }
}

template <class T>
__global__ void grad_input_kernel(const T* dy, const T* x, const T* relu_y, T* dx, int64_t n, int64_t C,
                                  int64_t inner, const float* k, const float* p, const float* q) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / inner) % C;
    const float g = relu_y && !(ld(relu_y, i) > 0.f) ? 0.f : ld(dy, i);
    st(dx, i, k[c] * g + p[c] * ld(x, i) + q[c]);
  }
}

}  // namespace

void bn_stats(const void* x, bool bf16, const ChannelLayout& l, double* out, void* stream) {
  if (bf16)
    launch_sums(StatsTerms<bf16_t>{static_cast<const bf16_t*>(x)}, l, out, as_stream(stream));
  else
    launch_sums(StatsTerms<float>{static_cast<const float*>(x)}, l, out, as_stream(stream));
  HALO_CUDA_CHECK_LAUNCH("bn_stats");
}

void bn_affine(const void* x, void* y, bool bf16, const ChannelLayout& l, const float* scale, const float* shift,
               bool relu, void* stream) {
  if (l.n == 0) return;
  auto s = as_stream(stream);
  if (bf16)
    affine_kernel<<<blocks_for(l.n), kThreads, 0, s>>>(static_cast<const bf16_t*>(x), static_cast<bf16_t*>(y), l.n,
                                                       l.C, l.inner, scale, shift, relu);
  else
    affine_kernel<<<blocks_for(l.n), kThreads, 0, s>>>(static_cast<const float*>(x), static_cast<float*>(y), l.n,
                                                       l.C, l.inner, scale, shift, relu);
  HALO_CUDA_CHECK_LAUNCH("bn_affine");
}

void bn_grad_sums(const void* dy, const void* x, const void* relu_y, bool bf16, const ChannelLayout& l,
                  const double* mean, double* out, void* stream) {
  if (bf16)
    launch_sums(GradTerms<bf16_t>{static_cast<const bf16_t*>(dy), static_cast<const bf16_t*>(x),
                                  static_cast<const bf16_t*>(relu_y), mean},
                l, out, as_stream(stream));
  else
    launch_sums(GradTerms<float>{static_cast<const float*>(dy), static_cast<const float*>(x),
                                 static_cast<const float*>(relu_y), mean},
                l, out, as_stream(stream));
  HALO_CUDA_CHECK_LAUNCH("bn_grad_sums");
}

void bn_grad_input(const void* dy, const void* x, const void* relu_y, void* dx, bool bf16, const ChannelLayout& l,
                   const float* k, const float* p, const float* q, void* stream) {
  if (l.n == 0) return;
  auto s = as_stream(stream);
  if (bf16)
    grad_input_kernel<<<blocks_for(l.n), kThreads, 0, s>>>(
        static_cast<const bf16_t*>(dy), static_cast<const bf16_t*>(x), static_cast<const bf16_t*>(relu_y),
        static_cast<bf16_t*>(dx), l.n, l.C, l.inner, k, p, q);
  else
    grad_input_kernel<<<blocks_for(l.n), kThreads, 0, s>>>(
        static_cast<const float*>(dy), static_cast<const float*>(x), static_cast<const float*>(relu_y),
        static_cast<float*>(dx), l.n, l.C, l.inner, k, p, q);
  HALO_CUDA_CHECK_LAUNCH("bn_grad_input");
}

namespace {

__global__ void train_coefficients_kernel(const double* sums, double count, int64_t C, double eps, double momentum,
                                          const float* w, const float* b, float* rm, float* rv, double* mean,
                                          double* invstd, float* scale, float* shift) {
  HALO_GRID_LOOP(c, C) {
    const double m = sums[c] / count;
    // E[x^2] - E[x]^2 can round below zero for near-constant channels.
    const double var = fmax(0.0, sums[C + c] / count - m * m);
    const double is = 1.0 / sqrt(var + eps);
    mean[c] = m;
    invstd[c] = is;
    if (rm && rv) {
      rm[c] = float((1 - momentum) * double(rm[c]) + momentum * m);
      rv[c] = float((1 - momentum) * double(rv[c]) + momentum * var * (count / (count - 1)));
    }
    const double k = (w ? double(w[c]) : 1.0) * is;
    scale[c] = float(k);
    shift[c] = float((b ? double(b[c]) : 0.0) - m * k);
  }
}

__global__ void eval_coefficients_kernel(const float* rm, const float* rv, int64_t C, double eps, const float* w,
                                         const float* b, double* mean, double* invstd, float* scale, float* shift) {
  HALO_GRID_LOOP(c, C) {
    const double m = rm[c], is = 1.0 / sqrt(double(rv[c]) + eps);
    mean[c] = m;
    invstd[c] = is;
    const double k = (w ? double(w[c]) : 1.0) * is;
    scale[c] = float(k);
    shift[c] = float((b ? double(b[c]) : 0.0) - m * k);
  }
}

__global__ void backward_coefficients_kernel(const double* sums, const double* mean, const double* invstd,
                                             const float* w, double count, bool batch_stats, int64_t C, float* dbias,
                                             float* dweight, float* k, float* p, float* q) {
  HALO_GRID_LOOP(c, C) {
    const double sdy = sums[c], sdyx = sums[C + c] * invstd[c];  // sum g', sum g' * xhat
    dbias[c] = float(sdy);
    dweight[c] = float(sdyx);
    const double kk = (w ? double(w[c]) : 1.0) * invstd[c];
    double pp = 0, qq = 0;
    if (batch_stats) {
      pp = -kk * invstd[c] * (sdyx / count);
      qq = -kk * (sdy / count) - pp * mean[c];
    }
    k[c] = float(kk);
    p[c] = float(pp);
    q[c] = float(qq);
  }
}

}  // namespace

void bn_train_coefficients(const double* sums, double count, int64_t C, double eps, double momentum, const float* w,
                           const float* b, float* running_mean, float* running_var, double* mean, double* invstd,
                           float* scale, float* shift, void* stream) {
  if (C == 0) return;
  train_coefficients_kernel<<<blocks_for(C, 64), kThreads, 0, as_stream(stream)>>>(
      sums, count, C, eps, momentum, w, b, running_mean, running_var, mean, invstd, scale, shift);
  HALO_CUDA_CHECK_LAUNCH("bn_train_coefficients");
}

void bn_eval_coefficients(const float* running_mean, const float* running_var, int64_t C, double eps, const float* w,
                          const float* b, double* mean, double* invstd, float* scale, float* shift, void* stream) {
  if (C == 0) return;
  eval_coefficients_kernel<<<blocks_for(C, 64), kThreads, 0, as_stream(stream)>>>(running_mean, running_var, C, eps,
                                                                                   w, b, mean, invstd, scale, shift);
  HALO_CUDA_CHECK_LAUNCH("bn_eval_coefficients");
}

void bn_backward_coefficients(const double* sums, const double* mean, const double* invstd, const float* w,
                              double count, bool batch_stats, int64_t C, float* dbias, float* dweight, float* k,
                              float* p, float* q, void* stream) {
  if (C == 0) return;
  backward_coefficients_kernel<<<blocks_for(C, 64), kThreads, 0, as_stream(stream)>>>(
      sums, mean, invstd, w, count, batch_stats, C, dbias, dweight, k, p, q);
  HALO_CUDA_CHECK_LAUNCH("bn_backward_coefficients");
}

}  // namespace halo::cuda::raw
