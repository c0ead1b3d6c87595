// GEMM on CBLAS (OpenBLAS in the default build), plus the bias helpers of dense layers.
#include "cpu/matmul.hpp"

#include <cblas.h>

#include <vector>

namespace halo::kernels::cpu {

namespace {
CBLAS_TRANSPOSE op(bool t) { return t ? CblasTrans : CblasNoTrans; }
}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, op(ta), op(tb), int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c,
              int(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                  const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, op(ta), op(tb), int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c,
              int(ldc));
}

template <class T>
void column_sums_add(int64_t rows, int64_t cols, const T* g, T* bias) {
  // Row by row so the reads are sequential; accumulated in double for long batches.
  std::vector<double> acc(size_t(cols), 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = g + i * cols;
    for (int64_t j = 0; j < cols; ++j) acc[size_t(j)] += double(row[j]);
  }
  for (int64_t j = 0; j < cols; ++j) bias[j] += T(acc[size_t(j)]);
}

template <class T>
void broadcast_rows(int64_t rows, int64_t cols, const T* bias, T* y) {
#pragma omp parallel for if (rows * cols > (1 << 15)) schedule(static)
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) y[i * cols + j] = bias[j];
}

template void column_sums_add<float>(int64_t, int64_t, const float*, float*);
template void column_sums_add<double>(int64_t, int64_t, const double*, double*);
template void broadcast_rows<float>(int64_t, int64_t, const float*, float*);
template void broadcast_rows<double>(int64_t, int64_t, const double*, double*);

}  // namespace halo::kernels::cpu
