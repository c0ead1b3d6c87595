// BatchNorm kernels for f32 channels-last tensors: memory is rows of C values (one row per
// (n, spatial) position), so every pass streams the tensor once with the per-channel
// coefficients in cache. Sums use per-thread double partials merged at the end.
// A fused ReLU (BatchNorm followed by ReLU as one layer) is applied in the affine pass, and
// its derivative (from the sign of the saved output) inside both backward passes, so the
// activation costs no pass of its own.
#include <omp.h>

#include <vector>

#include "cpu/batchnorm.hpp"

namespace halo::kernels::cpu {
namespace {

struct Rows {
  int64_t rows, C;
};
Rows rows_of(const Tensor& x) {
  const int64_t C = x.size(1);
  return {C ? x.numel() / C : 0, C};
}

// Per-thread partial sums of two per-channel quantities f(row, c) -> (a, b), merged into out_a/out_b.
template <class F>
void channel_reduce(const Rows& r, double* out_a, double* out_b, F&& f) {
  const int nt = omp_get_max_threads();
  std::vector<double> part(size_t(nt) * size_t(2 * r.C), 0.0);
#pragma omp parallel num_threads(nt)
  {
    double* a = part.data() + size_t(omp_get_thread_num()) * size_t(2 * r.C);
    double* b = a + r.C;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < r.rows; ++i) f(i, a, b);
  }
  for (int64_t c = 0; c < r.C; ++c) {
    double sa = 0, sb = 0;
    for (int t = 0; t < nt; ++t) {
      sa += part[size_t(t) * size_t(2 * r.C) + size_t(c)];
      sb += part[size_t(t) * size_t(2 * r.C) + size_t(r.C + c)];
    }
    out_a[c] = sa;
    out_b[c] = sb;
  }
}

std::vector<float> to_float(const double* v, int64_t n) { return std::vector<float>(v, v + n); }

}  // namespace

void bn_channel_sums_cl(const Tensor& x, double* sum, double* sumsq) {
  const Rows r = rows_of(x);
  const float* xp = x.data<float>();
  channel_reduce(r, sum, sumsq, [&](int64_t i, double* a, double* b) {
    const float* row = xp + i * r.C;
#pragma omp simd
    for (int64_t c = 0; c < r.C; ++c) {
      const double v = double(row[c]);
      a[c] += v;
      b[c] += v * v;
    }
  });
}

void bn_affine_cl(const Tensor& x, const double* scale, const double* shift, Tensor& y, bool relu) {
  const Rows r = rows_of(x);
  const std::vector<float> a = to_float(scale, r.C), b = to_float(shift, r.C);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const float* ap = a.data();
  const float* bp = b.data();
  // Branch-free select so that the ReLU vectorises (a data-dependent branch per element
  // mispredicts half the time on activations of mixed sign: 5x slower).
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < r.rows; ++i) {
    const float* xr = xp + i * r.C;
    float* yr = yp + i * r.C;
    if (relu) {
#pragma omp simd
      for (int64_t c = 0; c < r.C; ++c) {
        const float v = xr[c] * ap[c] + bp[c];
        yr[c] = v > 0.0f ? v : 0.0f;
      }
    } else {
#pragma omp simd
      for (int64_t c = 0; c < r.C; ++c) yr[c] = xr[c] * ap[c] + bp[c];
    }
  }
}

void bn_grad_sums_cl(const Tensor& dy, const Tensor& x, const double* mean, double* sum_dy, double* sum_dy_xmu,
                     const float* relu_y) {
  const Rows r = rows_of(x);
  const float* xp = x.data<float>();
  const float* gp = dy.data<float>();
  channel_reduce(r, sum_dy, sum_dy_xmu, [&](int64_t i, double* a, double* b) {
    const float* xr = xp + i * r.C;
    const float* gr = gp + i * r.C;
    if (relu_y) {
      const float* yr = relu_y + i * r.C;
#pragma omp simd
      for (int64_t c = 0; c < r.C; ++c) {
        const double g = double(gr[c] * float(yr[c] > 0.0f));  // multiply, not branch: vectorises
        a[c] += g;
        b[c] += g * (double(xr[c]) - mean[c]);
      }
      return;
    }
#pragma omp simd
    for (int64_t c = 0; c < r.C; ++c) {
      const double g = double(gr[c]);
      a[c] += g;
      b[c] += g * (double(xr[c]) - mean[c]);
    }
  });
}

void bn_grad_input_cl(const Tensor& dy, const Tensor& x, const double* k, const double* p, const double* q, Tensor& dx,
                      const float* relu_y) {
  const Rows r = rows_of(x);
  const std::vector<float> kf = to_float(k, r.C), pf = to_float(p, r.C), qf = to_float(q, r.C);
  const float* xp = x.data<float>();
  const float* gp = dy.data<float>();
  float* op = dx.data<float>();
  const float *kp = kf.data(), *pp = pf.data(), *qp = qf.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < r.rows; ++i) {
    const float* xr = xp + i * r.C;
    const float* gr = gp + i * r.C;
    float* orow = op + i * r.C;
    if (relu_y) {
      const float* yr = relu_y + i * r.C;
#pragma omp simd
      for (int64_t c = 0; c < r.C; ++c) orow[c] = kp[c] * (gr[c] * float(yr[c] > 0.0f)) + pp[c] * xr[c] + qp[c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < r.C; ++c) orow[c] = kp[c] * gr[c] + pp[c] * xr[c] + qp[c];
    }
  }
}

}  // namespace halo::kernels::cpu
