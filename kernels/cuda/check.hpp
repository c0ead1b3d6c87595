// Error checks for CUDA runtime, cuBLAS and cuDNN calls: a failure throws halo::Error naming
// the call, the library's own message and the source line, so a user can tell an
// out-of-memory from a missing driver from a bad shape.
#pragma once
#include <cuda_runtime.h>

#include "halo/util/error.hpp"

#define HALO_CUDA_CHECK(call)                                                                   \
  do {                                                                                          \
    cudaError_t halo_err_ = (call);                                                             \
    if (halo_err_ != cudaSuccess)                                                               \
      throw ::halo::Error(::halo::str("CUDA error in ", #call, " at ", __FILE__, ":", __LINE__, \
                                      ": ", cudaGetErrorName(halo_err_), " (",                  \
                                      cudaGetErrorString(halo_err_), ")"));                     \
  } while (0)

/// After a kernel launch: reports bad launch configurations at the launch site.
#define HALO_CUDA_CHECK_LAUNCH(what) HALO_CUDA_CHECK(cudaGetLastError())

#define HALO_CUBLAS_CHECK(call)                                                                 \
  do {                                                                                          \
    cublasStatus_t halo_st_ = (call);                                                           \
    if (halo_st_ != CUBLAS_STATUS_SUCCESS)                                                      \
      throw ::halo::Error(::halo::str("cuBLAS error in ", #call, " at ", __FILE__, ":",         \
                                      __LINE__, ": ", cublasGetStatusName(halo_st_)));          \
  } while (0)

#define HALO_CUDNN_CHECK(call)                                                                  \
  do {                                                                                          \
    cudnnStatus_t halo_st_ = (call);                                                            \
    if (halo_st_ != CUDNN_STATUS_SUCCESS)                                                       \
      throw ::halo::Error(::halo::str("cuDNN error in ", #call, " at ", __FILE__, ":",          \
                                      __LINE__, ": ", cudnnGetErrorString(halo_st_)));          \
  } while (0)
