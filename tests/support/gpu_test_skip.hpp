// Included by every GPU test program (tests/unit/test_*_cuda.cpp, and the tests/mpi ones that
// run with one GPU or ranks sharing it): on a machine without a usable GPU the program exits
// with 77 before Catch2 (and, in the MPI tests, MPI_Init) runs, on every rank alike, which
// ctest reports as skipped (SKIP_RETURN_CODE 77 in tests/CMakeLists.txt), so CI builds the GPU
// tests but never fails on them for want of a GPU.
#pragma once
#include <cstdio>
#include <cstdlib>

#include "halo/cuda/runtime.hpp"

namespace halo_gpu_test {
inline const bool gpu_present = [] {
  if (!halo::cuda::available()) {
    std::fprintf(stderr, "no CUDA GPU visible: GPU tests skipped\n");
    std::exit(77);
  }
  return true;
}();
}  // namespace halo_gpu_test
