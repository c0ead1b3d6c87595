// CPU matrix-product kernels on row-major arrays: BLAS in matmul.cpp, a plain loop in
// matmul_ref.cpp. lda/ldb/ldc are row strides in elements.
#pragma once
#include <cstdint>

namespace halo::kernels::cpu {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc);
/// bias[j] += sum_i g[i * cols + j]
template <class T>
void column_sums_add(int64_t rows, int64_t cols, const T* g, T* bias);
/// y[i * cols + j] = bias[j]
template <class T>
void broadcast_rows(int64_t rows, int64_t cols, const T* bias, T* y);

namespace ref {
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc);
}  // namespace ref

}  // namespace halo::kernels::cpu
