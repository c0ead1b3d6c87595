// cuBLAS GEMM (gemm.hpp). cuBLAS is column-major: a row-major M x N matrix is its N x M
// transpose, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T with the operands swapped.
#include <cublas_v2.h>

#include <mutex>
#include <unordered_map>

#include "cuda/check.hpp"
#include "cuda/gemm.hpp"
#include "halo/cuda/runtime.hpp"

namespace halo::cuda {

namespace {

// One handle per device and thread: handles are not safe to share between threads that
// set different streams on them.
cublasHandle_t handle_for(int device) {
  thread_local std::unordered_map<int, cublasHandle_t> handles;
  auto it = handles.find(device);
  if (it != handles.end()) return it->second;
  cublasHandle_t h = nullptr;
  HALO_CUBLAS_CHECK(cublasCreate(&h));
  handles[device] = h;  // kept for the thread's life: creation costs milliseconds
  return h;
}

}  // namespace

void gemm(bool trans_a, bool trans_b, float alpha, const Tensor& a, const Tensor& b, float beta, Tensor& c,
          bool allow_tf32) {
  HALO_CHECK_SHAPE(a.defined() && b.defined() && c.defined() && a.dim() == 2 && b.dim() == 2 && c.dim() == 2,
                   "cuda gemm: A, B and C must be 2-D");
  HALO_CHECK_SHAPE(a.device().is_cuda() && b.device() == a.device() && c.device() == a.device(),
                   "cuda gemm: A ", a.str(), ", B ", b.str(), " and C ", c.str(), " must be on one GPU");
  HALO_CHECK_SHAPE(a.is_contiguous() && b.is_contiguous() && c.is_contiguous(), "cuda gemm: A ", a.str(), ", B ",
                   b.str(), " and C ", c.str(), " must be contiguous");
  HALO_CHECK_SHAPE(a.dtype() == b.dtype() && (a.dtype() == DType::f32 || a.dtype() == DType::bf16) &&
                       (c.dtype() == a.dtype() || c.dtype() == DType::f32),
                   "cuda gemm: dtypes ", name(a.dtype()), ", ", name(b.dtype()), ", ", name(c.dtype()),
                   " (all f32, all bf16, or bf16 A and B with an f32 C expected)");
  const int64_t m = trans_a ? a.size(1) : a.size(0);
  const int64_t k = trans_a ? a.size(0) : a.size(1);
  const int64_t kb = trans_b ? b.size(1) : b.size(0);
  const int64_t n = trans_b ? b.size(0) : b.size(1);
  HALO_CHECK_SHAPE(k == kb && c.size(0) == m && c.size(1) == n, "cuda gemm: op(A) ", m, "x", k, ", op(B) ", kb,
                   "x", n, " and C ", to_string(c.shape()), " do not fit");
  if (m == 0 || n == 0) return;
  const int dev = c.device().index;
  DeviceGuard g(dev);
  cublasHandle_t h = handle_for(dev);
  HALO_CUBLAS_CHECK(cublasSetStream(h, current_stream(dev)));
  const bool bf = a.dtype() == DType::bf16;
  const cudaDataType_t t = bf ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType_t tc = c.dtype() == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t compute =
      bf ? CUBLAS_COMPUTE_32F : (allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  // Column-major view: C^T (n x m) = op(B)^T (n x k) * op(A)^T (k x m).
  HALO_CUBLAS_CHECK(cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 int(n), int(m), int(k), &alpha, b.raw_data(), t, int(b.size(1)), a.raw_data(), t,
                                 int(a.size(1)), &beta, c.raw_data(), tc, int(n), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace halo::cuda
